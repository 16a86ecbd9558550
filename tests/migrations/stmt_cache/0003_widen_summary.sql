-- zdm:safety_assured varchar(100) to varchar(200) is metadata-only; the healing pool covers cached plans
ALTER TABLE posts ALTER COLUMN summary TYPE VARCHAR(200);
