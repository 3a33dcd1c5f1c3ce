// Generated code depends neither on the prelude nor on names in scope, and raises no warning
// under strict lints.
#![deny(
    warnings,
    missing_docs,
    unused_qualifications,
    unused_results,
    unreachable_pub
)]
//! Strict crate.

/// Names that shadow the prelude: generated code must not pick them up.
#[allow(dead_code)]
mod shadows {
    pub(crate) struct Result;
    pub(crate) struct Option;
    pub(crate) struct Vec;
    pub(crate) struct String;
    pub(crate) struct Box;
}

#[allow(unused_imports)]
use shadows::*;

/// Everything in here is expanded without the implicit prelude.
pub mod domain {
    #![no_implicit_prelude]

    use ::eventweave_core::{Command, Event, EventMeta, Query, aggregate, projection};
    use ::serde::{Deserialize, Serialize};

    /// An event.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "Rang")]
    pub struct Rang {
        /// How loud.
        pub volume: u8,
    }

    /// A command.
    #[derive(Command, Clone, Deserialize)]
    #[command(aggregate = Bell)]
    pub struct Ring {
        /// Which bell.
        #[id]
        pub bell: u64,
        /// How loud.
        pub volume: u8,
    }

    /// A failure.
    #[derive(Debug)]
    pub struct Cracked;

    impl ::core::fmt::Display for Cracked {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            f.write_str("cracked")
        }
    }

    impl ::std::error::Error for Cracked {}

    /// An aggregate.
    #[derive(Default)]
    pub struct Bell {
        rings: u32,
    }

    #[aggregate(id = u64)]
    impl Bell {
        #[handle]
        fn ring(cmd: Ring) -> ::core::result::Result<Rang, Cracked> {
            ::core::result::Result::Ok(Rang { volume: cmd.volume })
        }

        #[handle]
        async fn ring_again(&self, cmd: &Again) -> (Rang, ::core::option::Option<Rang>) {
            (Rang { volume: cmd.volume }, ::core::option::Option::None)
        }

        #[apply]
        fn rang(&mut self, _: &Rang) {
            self.rings += 1;
        }
    }

    /// Another command.
    #[derive(Command)]
    #[command(aggregate = Bell)]
    pub struct Again {
        /// Which bell.
        #[id]
        pub bell: u64,
        /// How loud.
        pub volume: u8,
    }

    /// A query.
    #[derive(Query)]
    #[query(response = u64)]
    pub struct Loudest;

    /// A projection.
    #[derive(Default)]
    pub struct Peaks {
        loudest: u64,
    }

    #[projection]
    impl Peaks {
        fn on_rang(&mut self, e: &Rang, _: &EventMeta) {
            let volume: u64 = ::core::convert::From::from(e.volume);
            if volume > self.loudest {
                self.loudest = volume;
            }
        }

        #[query]
        fn loudest(&self, _: &Loudest) -> u64 {
            self.loudest
        }
    }
}

fn main() {
    let _ = domain::BellEvent::from(domain::Rang { volume: 1 });
}
