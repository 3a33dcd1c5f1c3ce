//! Runtime tests live in this crate's `[[test]]` targets; this library is empty.
