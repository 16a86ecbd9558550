-- The names are generated per case: every step is a Rust migration in tests/identifiers.rs.
SELECT 1;
