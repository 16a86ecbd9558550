-- zdm:safety_assured varchar(100) to varchar(200) is metadata-only; build A reads through a healing pool
ALTER TABLE posts ALTER COLUMN summary TYPE VARCHAR(200);
