-- zdm:no_transaction
-- A re-run of a half-done file calls it again: nothing is added twice.
SELECT zdm_rename_column('"Post Ü"', 'Sümmary', 'Sümmary ÿ');
SELECT zdm_rename_column('"Post Ü"', 'Sümmary', 'Sümmary ÿ');
