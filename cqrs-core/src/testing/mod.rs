//! Test support for code built on this crate (feature `testing`): a hand-written domain and the
//! store conformance suite that every [`EventStore`](crate::EventStore) must pass.
//!
//! A store crate runs the whole suite with one macro call in an integration test:
//!
//! ```ignore
//! eventweave_core::store_conformance_tests! {
//!     fresh: || async { my_store::open_fresh().await },
//!     limited: |max_event_bytes| async move { my_store::open_fresh_with_limit(max_event_bytes).await },
//! }
//! ```
//!
//! `fresh` is called once per test and must return a fresh, empty store; `limited` must return
//! one that refuses events above the given size. The generated
//! tests use `#[tokio::test]`, so the calling crate needs `tokio` (features `macros`, `rt-multi-thread`)
//! as a dev-dependency.
//!
//! A store that needs an external service may add `skip: || -> Option<String>`: each generated
//! test calls it first and, when it returns a reason, prints `SKIPPED: <test>: <reason>` to
//! stderr (see [`report_skip`]) and returns without running (e.g. when no database URL is configured).

pub mod checkpoints;
pub mod conformance;
mod contract;
pub mod dcb;
pub mod domain;
pub mod inspect;
#[cfg(feature = "derive")]
pub mod snapshots;
pub mod sql;

/// Prints `SKIPPED: <test>: <reason>` straight to the process's stderr, past the test
/// harness's output capture, so a skipped test is visible in a plain `cargo test` run.
pub fn report_skip(test: &str, reason: &dyn std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// Generates one `#[tokio::test]` per case of [`conformance`], each on a fresh store made by
/// the given async closure.
#[macro_export]
macro_rules! store_conformance_tests {
    (fresh: $make:expr, limited: $limited:expr $(,)?) => {
        $crate::store_conformance_tests!(
            fresh: $make,
            limited: $limited,
            skip: || ::core::option::Option::<::std::string::String>::None,
        );
    };
    (fresh: $make:expr, limited: $limited:expr, skip: $skip:expr $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn oversized_events_are_refused_before_anything_is_written() {
            if let ::core::option::Option::Some(reason) = ($skip)() {
                $crate::testing::report_skip("oversized_events_are_refused_before_anything_is_written", &reason);
                return;
            }
            let limited = $limited;
            $crate::testing::conformance::oversized_events_are_refused_before_anything_is_written(&limited).await;
        }
        $crate::__conformance_cases!(conformance; $make, $skip;
            append_and_read_round_trip,
            expected_versions_are_enforced,
            batches_are_all_or_nothing,
            retries_with_the_same_event_ids_are_idempotent,
            read_all_returns_global_order_from_any_position,
            data_is_stored_verbatim,
            metadata_round_trips,
            empty_stream_names_and_empty_batches,
            subscriptions_catch_up_then_follow_live,
            concurrent_appends_lose_and_duplicate_nothing,
            concurrent_commands_through_the_bus_lose_nothing,
            undecodable_events_are_typed_errors_and_lose_nothing,
            invalid_input_is_refused_before_anything,
            reads_with_invalid_stream_ids_are_refused,
            retries_with_other_content_are_idempotency_conflicts,
            read_event_finds_events_by_id,
            a_command_id_sent_again_returns_the_first_outcome,
        );
    };
}

/// Generates one `#[tokio::test]` per case of [`checkpoints`], each on a fresh store made by the
/// given async closure (with an optional `skip`, as in [`store_conformance_tests!`]).
#[macro_export]
macro_rules! checkpoint_conformance_tests {
    (fresh: $make:expr $(,)?) => {
        $crate::checkpoint_conformance_tests!(
            fresh: $make,
            skip: || ::core::option::Option::<::std::string::String>::None,
        );
    };
    (fresh: $make:expr, skip: $skip:expr $(,)?) => {
        $crate::__conformance_cases!(checkpoints; $make, $skip;
            unknown_projection_is_at_zero,
            save_load_and_overwrite,
            park_moves_the_checkpoint_and_lists_in_position_order,
            unpark_removes_records_and_keeps_the_checkpoint,
        );
    };
}

/// Generates one `#[tokio::test]` per case of [`dcb`] (reading by query, append conditions,
/// atomic appends to several streams), each on a fresh store made by the given async closure
/// (with an optional `skip`, as in [`store_conformance_tests!`]).
#[macro_export]
macro_rules! dcb_conformance_tests {
    (fresh: $make:expr $(,)?) => {
        $crate::dcb_conformance_tests!(
            fresh: $make,
            skip: || ::core::option::Option::<::std::string::String>::None,
        );
    };
    (fresh: $make:expr, skip: $skip:expr $(,)?) => {
        $crate::__conformance_cases!(dcb; $make, $skip;
            query_reads_select_by_types_and_tags,
            conditions_refuse_only_matching_events_after_the_position,
            conditions_of_every_shape_guard_a_lone_event,
            conditional_appends_write_several_streams_atomically,
            conditional_append_retries_are_idempotent,
            racing_writers_take_exactly_the_last_seats,
            bad_tags_and_queries_are_typed_errors,
        );
    };
}

/// One `#[tokio::test]` per case of `testing::<module>`, each with its own fresh store and the
/// `skip` check. Shared by the conformance macros above.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($module:ident; $make:expr, $skip:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let ::core::option::Option::Some(reason) = ($skip)() {
                    $crate::testing::report_skip(::core::stringify!($case), &reason);
                    return;
                }
                let make = $make;
                $crate::testing::$module::$case(&make).await;
            }
        )+
    };
}

/// Generates one `#[tokio::test]` per case of [`snapshots`], each on a fresh store made by the
/// given async closure (with an optional `skip`, as in [`store_conformance_tests!`]). Needs the
/// `derive` feature (the cases use a `#[aggregate]`).
#[cfg(feature = "derive")]
#[macro_export]
macro_rules! snapshot_conformance_tests {
    (fresh: $make:expr $(,)?) => {
        $crate::snapshot_conformance_tests!(
            fresh: $make,
            skip: || ::core::option::Option::<::std::string::String>::None,
        );
    };
    (fresh: $make:expr, skip: $skip:expr $(,)?) => {
        $crate::snapshot_conformance_tests!(@cases $make, $skip;
            save_and_load,
            newer_replaces_older_never_back,
            snapshots_are_per_stream,
            commands_take_snapshots_and_loads_use_them,
            older_shape_is_ignored_and_replaced,
            corrupt_snapshot_is_discarded_with_a_warning,
        );
    };
    (@cases $make:expr, $skip:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let ::core::option::Option::Some(reason) = ($skip)() {
                    $crate::testing::report_skip(::core::stringify!($case), &reason);
                    return;
                }
                let make = $make;
                $crate::testing::snapshots::$case(&make).await;
            }
        )+
    };
}
