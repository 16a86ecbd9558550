-- zdm:after_deploy
ALTER TABLE notes ADD COLUMN body TEXT;
