-- Release 2 calls it `headline`: both names work until release 1 is gone.
SELECT zdm_rename_column('posts', 'title', 'headline');
