ALTER TABLE items ADD COLUMN note TEXT;
INSERT INTO effects (version) VALUES (2);
