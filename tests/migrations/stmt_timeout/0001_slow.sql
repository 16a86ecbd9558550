-- zdm:statement_timeout 200ms
SELECT pg_sleep(3);
