-- zdm:safety_assured
DROP TABLE t;
SELECT 1;
-- zdm:after_deploy
SELECT 2;
