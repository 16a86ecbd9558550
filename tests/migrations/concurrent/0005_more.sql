ALTER TABLE items ADD COLUMN note TEXT;
INSERT INTO applied_log (version) VALUES (5);
