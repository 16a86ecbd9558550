-- zdm:after_deploy
ALTER TABLE posts DROP COLUMN views;
