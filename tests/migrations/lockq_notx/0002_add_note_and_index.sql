-- zdm:no_transaction
ALTER TABLE items ADD COLUMN note TEXT;
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_note_idx ON items (note);
