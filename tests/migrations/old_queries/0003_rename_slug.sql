-- zdm:safety_assured test fixture: the old-query check must catch what this breaks
ALTER TABLE posts RENAME COLUMN slug TO handle;
