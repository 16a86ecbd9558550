-- zdm:after_deploy
-- Release 2, post-deploy: release 1 still reads legacy_slug, so this waits for run_post.
ALTER TABLE posts DROP COLUMN legacy_slug;
