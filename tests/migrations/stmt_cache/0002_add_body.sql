-- The change every linter calls safe, and the one that breaks cached `SELECT *`.
ALTER TABLE posts ADD COLUMN body TEXT;
