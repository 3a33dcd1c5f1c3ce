//! The trybuild UI suite: each `ui/fail/**/*.rs` is one mistake, and its `.stderr` is the
//! error the user sees; each `ui/pass/*.rs` must compile.
//!
//! The `.stderr` files match this machine's toolchain (see `rust-toolchain` / the CI image):
//! after a compiler upgrade or a change to a message, regenerate them with
//! `TRYBUILD=overwrite cargo test -p cqrs-tests --test ui` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/**/*.rs");
}
