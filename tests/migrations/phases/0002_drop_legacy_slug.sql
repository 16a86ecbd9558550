-- zdm:after_deploy
ALTER TABLE posts DROP COLUMN legacy_slug;
