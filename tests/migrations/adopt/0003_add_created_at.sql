-- The first migration written after adopting zdm.
ALTER TABLE users ADD COLUMN created_at TIMESTAMPTZ;
