-- zdm:no_transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_n_idx ON items (n);
INSERT INTO applied_log (version) VALUES (3);
