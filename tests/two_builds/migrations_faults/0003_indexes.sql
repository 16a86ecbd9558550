-- zdm:no_transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_payload_idx ON items (payload);
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_note_idx ON items (note);
