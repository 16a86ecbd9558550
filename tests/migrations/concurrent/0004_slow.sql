SELECT pg_sleep(0.3);
INSERT INTO applied_log (version) VALUES (4);
