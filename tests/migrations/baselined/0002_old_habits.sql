-- Written before zdm: a blocking index build, which the lint would refuse today.
CREATE INDEX posts_title ON posts (title);
