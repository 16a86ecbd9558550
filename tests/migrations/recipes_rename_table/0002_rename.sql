-- Release 2 calls the table `articles`; `entries` stays as an updatable view meanwhile.
SELECT zdm_rename_table('entries', 'articles');
