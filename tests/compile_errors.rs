//! Bad input is a compile error naming the file and line: pinned with trybuild.
//! (trybuild builds these from target/tests/trybuild/zdm, hence the `../../../../` paths.)

#[test]
fn bad_migrations_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
