-- The first migration after adoption: judged against the replayed schema.
ALTER TABLE posts ADD COLUMN body TEXT;
