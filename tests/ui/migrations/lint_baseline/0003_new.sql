-- The first migration after adoption: judged against the replayed schema.
ALTER TABLE posts ALTER COLUMN title SET NOT NULL;
ALTER TABLE posts ALTER COLUMN body TYPE varchar(10);
