-- zdm:after_deploy
ALTER TABLE notes DROP COLUMN extra;
DROP TABLE old_log;
