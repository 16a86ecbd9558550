-- Additive: the build still serving never names these columns.
ALTER TABLE posts ADD COLUMN summary TEXT;
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
