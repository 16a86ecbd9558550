-- zdm:after_deploy
-- zdm:safety_assured test fixture: a handful of rows, one statement is the point of the test
UPDATE posts SET title = trim(title) WHERE title <> trim(title);
