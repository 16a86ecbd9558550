-- zdm:safety_assured nullable column, no default: metadata-only
ALTER TABLE posts ADD COLUMN body TEXT;
