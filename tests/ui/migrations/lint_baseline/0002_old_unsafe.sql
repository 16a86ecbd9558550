-- Written before zdm was adopted: history, not judged.
CREATE INDEX posts_body_idx ON posts (body);
