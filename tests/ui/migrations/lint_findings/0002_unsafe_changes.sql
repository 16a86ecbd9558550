-- Three unsafe statements: all three are reported at once.
ALTER TABLE posts DROP COLUMN legacy_slug;
CREATE INDEX posts_title_idx ON posts (title);

ALTER TABLE posts ALTER COLUMN body SET NOT NULL;
