-- zdm:after_deploy
UPDATE posts SET title = trim(title) WHERE title <> trim(title);
