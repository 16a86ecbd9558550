-- zdm:after_deploy
ALTER TABLE posts DROP COLUMN body;
ALTER TABLE posts RENAME COLUMN title TO headline;
