-- zdm:no_transaction
-- zdm:lock_timeout 100ms
-- zdm:statement_timeout 1min
SELECT pg_sleep(5);
INSERT INTO t (id) VALUES (1);
