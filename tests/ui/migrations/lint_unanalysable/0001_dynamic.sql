DO $$
BEGIN
    EXECUTE 'ALTER TABLE ' || quote_ident('posts') || ' DROP COLUMN legacy';
END
$$;
