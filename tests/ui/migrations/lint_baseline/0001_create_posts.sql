CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL);
CREATE INDEX posts_title_idx ON posts (title);
ALTER TABLE posts ADD COLUMN body text;
