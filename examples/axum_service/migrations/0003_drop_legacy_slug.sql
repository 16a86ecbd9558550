-- zdm:after_deploy
-- Release 2, post-deploy: release 1 still reads legacy_slug; run_post_when_safe drops it
-- once no live build predates this migration (and the backfill before it finished).
ALTER TABLE posts DROP COLUMN legacy_slug;
