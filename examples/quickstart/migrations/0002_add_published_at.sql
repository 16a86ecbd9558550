-- Release 2, pre-deploy: additive, so release 1 keeps working while it still serves.
ALTER TABLE posts ADD COLUMN published_at TEXT;
