ALTER TABLE posts ADD CONSTRAINT views_not_negative CHECK (views >= 0) NOT VALID;
-- zdm:safety_assured test fixture: comments is tiny in this test
ALTER TABLE comments ALTER COLUMN body SET NOT NULL;
