ALTER TABLE items ADD COLUMN note TEXT;
-- zdm:safety_assured test fixture: records that this migration ran
INSERT INTO applied_log (version) VALUES (5);
