-- A side effect, then a long pause: run twice, it would count twice.
INSERT INTO effects (n) VALUES (1);
SELECT pg_sleep(6);
