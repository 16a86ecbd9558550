-- zdm:no_transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_n_key ON items (n);
