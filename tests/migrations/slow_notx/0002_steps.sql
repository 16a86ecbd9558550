-- zdm:no_transaction
INSERT INTO effects (n) VALUES (1);
SELECT pg_sleep(2);
INSERT INTO effects (n) VALUES (2);
