-- zdm:no_transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS a_n_idx ON a (n);

SELECT no_such_column FROM a;
