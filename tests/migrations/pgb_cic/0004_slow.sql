SELECT pg_sleep(0.2);
INSERT INTO applied_log (version) VALUES (4);
