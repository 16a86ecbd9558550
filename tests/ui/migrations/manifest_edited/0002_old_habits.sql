-- Written before zdm, then edited after the baseline: judged again.
CREATE INDEX posts_title ON posts (title, id);
