#!/usr/bin/env python3
"""Compile-time cost of the macros: one domain of N commands and N events (default 50), written
once with the macros (`#[derive(Event)]`, `#[derive(Command)]`, `#[aggregate]`) and once by hand
against the traits (as `cqrs-core/src/testing/domain.rs` spells them out), in two throwaway
crates of one throwaway workspace in a temporary directory.

How only the domain crate is measured: both crates share one target directory. First every
dependency (eventweave-core, eventweave-derive, serde, ...) is built once per profile; then, for each crate
and profile, `cargo clean -p <crate> [--release]` removes that crate's own artifacts only and
`cargo build -p <crate> [--release]` is timed, so the timed build compiles the domain crate alone
on a warm dependency cache. Each timing is repeated (default 3) and the median printed.

What is not counted: building the proc macros (`eventweave-derive`, `serde_derive`) and `syn`.
Both crates have all of them in their dependency graph (the hand-written one through
`eventweave-core`'s default `derive` feature and its own serde derives), so counting them would
add the same seconds to both sides; they are built once per machine, the domain at every edit.
Running the macros is counted (it happens while the domain crate compiles). `CARGO_TARGET_DIR`,
when set, replaces the temporary target directory, so repeated runs keep the dependencies.
`compare.py` puts two checkouts side by side, interleaved.

Usage (from anywhere; not part of `cargo test`):
    python3 cqrs-bench/compile-time/run.py [--n 50] [--repeat 3] [--keep]

`--quick` (what `.ci/run` runs, so the hand-written domain cannot fall behind the traits again):
5 commands, one debug build of each crate, in the project's own `target/` so the dependencies
are mostly built already; it prints the timings but they mean little at that size.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def macro_domain(n):
    out = ["//! Generated: the macro version.", "#![allow(missing_docs)]",
           "use eventweave_core::prelude::*;", "use serde::{Deserialize, Serialize};", "",
           "#[derive(Debug, Clone, PartialEq, Eq)]",
           "pub enum BigError { Zero }",
           "impl std::fmt::Display for BigError {",
           "    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(\"zero\") }",
           "}",
           "impl std::error::Error for BigError {}", ""]
    for i in range(n):
        out += [f"#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]",
                f"#[event(name = \"big.e{i}\")]",
                f"pub struct E{i} {{ pub n: u64 }}", "",
                f"#[derive(Command, Clone, Debug, Serialize, Deserialize)]",
                f"#[command(aggregate = Big)]",
                f"pub struct C{i} {{ #[id] pub id: u64, pub n: u64 }}", ""]
    out += ["#[derive(Default, Debug)]", "pub struct Big { total: u64 }", "",
            "#[aggregate(id = u64, name = \"big\")]", "impl Big {"]
    out += ["    #[handle]", "    fn c0(cmd: C0) -> E0 { E0 { n: cmd.n } }"]
    for i in range(1, n):
        out += ["    #[handle]",
                f"    fn c{i}(&self, cmd: &C{i}) -> Result<E{i}, BigError> {{",
                "        if cmd.n == 0 { return Err(BigError::Zero); }",
                f"        Ok(E{i} {{ n: cmd.n }})", "    }"]
    for i in range(n):
        out += ["    #[apply]", f"    fn e{i}(&mut self, e: &E{i}) {{ self.total += e.n; }}"]
    out += ["}", ""]
    return "\n".join(out)


def hand_domain(n):
    out = ["//! Generated: the hand-written version, against the traits.", "#![allow(missing_docs)]",
           "use std::any::Any;",
           "use eventweave_core::{Aggregate, Command, CommandBus, CommandContext, CommandOutcome,",
           "    CommandSet, DecodeFailure, DispatchError, Event, EventSet, HandlerError, HandlerKind,",
           "    Handles, IntoEvents, Services};",
           "use serde::{Deserialize, Serialize};", "",
           "#[derive(Debug, Clone, PartialEq, Eq)]",
           "pub enum BigError { Zero }",
           "impl std::fmt::Display for BigError {",
           "    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(\"zero\") }",
           "}",
           "impl std::error::Error for BigError {}", ""]
    for i in range(n):
        out += [f"#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]",
                f"pub struct E{i} {{ pub n: u64 }}",
                f"impl Event for E{i} {{ const NAME: &'static str = \"big.e{i}\"; const VERSION: u32 = 1; }}",
                f"impl IntoEvents<Big> for E{i} {{",
                f"    fn into_events(self, out: &mut Vec<BigEvent>) {{ out.push(BigEvent::E{i}(self)); }}",
                "}",
                f"#[derive(Clone, Debug, Serialize, Deserialize)]",
                f"pub struct C{i} {{ pub id: u64, pub n: u64 }}",
                f"impl Command for C{i} {{",
                "    type Aggregate = Big;",
                f"    const NAME: &'static str = \"C{i}\";",
                "    fn aggregate_id(&self) -> &u64 { &self.id }",
                "}", ""]
    out += ["#[derive(Clone, Debug, PartialEq)]", "pub enum BigEvent {"]
    out += [f"    E{i}(E{i})," for i in range(n)] + ["}", ""]
    out += ["impl EventSet for BigEvent {",
            "    const NAMES: &'static [&'static str] = &[" + ", ".join(f"E{i}::NAME" for i in range(n)) + "];",
            "    fn event_name(&self) -> &'static str {", "        match self {"]
    out += [f"            BigEvent::E{i}(_) => E{i}::NAME," for i in range(n)]
    out += ["        }", "    }",
            "    fn event_version(&self) -> u32 { 1 }",
            "    fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {", "        match self {"]
    out += [f"            BigEvent::E{i}(e) => serde_json::to_writer(out, e)," for i in range(n)]
    out += ["        }", "    }",
            "    fn decode(name: &str, version: u32, payload: &str) -> Result<Self, DecodeFailure> {",
            "        match name {"]
    out += [f"            \"big.e{i}\" => eventweave_core::__private::decode_event(version, payload).map(BigEvent::E{i}),"
            for i in range(n)]
    out += ["            _ => Err(DecodeFailure::UnknownEvent),", "        }", "    }",
            "    fn as_any(&self) -> &(dyn Any + Send + Sync) {", "        match self {"]
    out += [f"            BigEvent::E{i}(e) => e," for i in range(n)]
    out += ["        }", "    }", "}", ""]
    out += ["#[derive(Default, Debug)]", "pub struct Big { total: u64 }", "",
            "impl Aggregate for Big {", "    type Id = u64;", "    type Event = BigEvent;",
            "    type Command = BigCommand;", "    const NAME: &'static str = \"big\";",
            "    fn apply(&mut self, event: &BigEvent) {", "        match event {"]
    out += [f"            BigEvent::E{i}(e) => self.total += e.n," for i in range(n)]
    out += ["        }", "    }", "}", ""]
    out += ["impl Handles<C0> for Big {",
            "    type Error = std::convert::Infallible;",
            "    const KIND: HandlerKind = HandlerKind::Create;",
            "    fn handle(&self, cmd: &C0, _: &Services, _: u64)",
            "        -> impl Future<Output = Result<Vec<BigEvent>, HandlerError<Self::Error>>> + Send {",
            "        std::future::ready(Ok(vec![BigEvent::E0(E0 { n: cmd.n })]))",
            "    }", "}"]
    for i in range(1, n):
        out += [f"impl Handles<C{i}> for Big {{",
                "    type Error = BigError;",
                "    const KIND: HandlerKind = HandlerKind::Update;",
                f"    fn handle(&self, cmd: &C{i}, _: &Services, _: u64)",
                "        -> impl Future<Output = Result<Vec<BigEvent>, HandlerError<Self::Error>>> + Send {",
                "        std::future::ready(if cmd.n == 0 {",
                "            Err(HandlerError::Rejected(BigError::Zero))",
                "        } else {",
                f"            Ok(vec![BigEvent::E{i}(E{i} {{ n: cmd.n }})])",
                "        })", "    }", "}"]
    out += ["", "pub enum BigCommand {"] + [f"    C{i}(C{i})," for i in range(n)] + ["}", ""]
    out += ["impl CommandSet for BigCommand {", "    type Aggregate = Big;",
            "    const NAMES: &'static [&'static str] = &[" + ", ".join(f"C{i}::NAME" for i in range(n)) + "];",
            "    fn from_json(name: &str, body: &str) -> Result<Self, DispatchError> {",
            "        let bad = |command: &'static str| {",
            "            move |e: serde_json::Error| DispatchError::InvalidBody { command, message: e.to_string() }",
            "        };", "        match name {"]
    out += [f"            \"C{i}\" => serde_json::from_str(body).map(BigCommand::C{i}).map_err(bad(\"C{i}\")),"
            for i in range(n)]
    out += ["            _ => Err(DispatchError::UnknownCommand { name: name.to_owned(), known: Self::NAMES.to_vec() }),",
            "        }", "    }",
            "    async fn execute_on<B: CommandBus>(self, app: &B, context: CommandContext)",
            "        -> Result<CommandOutcome, DispatchError> {", "        match self {"]
    out += [f"            BigCommand::C{i}(c) => app.execute_command(c, context).await.map_err(eventweave_core::__private::box_command_error),"
            for i in range(n)]
    out += ["        }", "    }", "}", ""]
    return "\n".join(out)


def write_crate(ws, name, source):
    os.makedirs(os.path.join(ws, name, "src"))
    with open(os.path.join(ws, name, "Cargo.toml"), "w") as f:
        f.write(f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
eventweave-core = {{ path = "{ROOT}/cqrs-core" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
""")
    with open(os.path.join(ws, name, "src", "lib.rs"), "w") as f:
        f.write(source)


def make_workspace(n, prefix):
    """A throwaway workspace in a temporary directory holding both domains of `n` commands."""
    ws = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(ws, "Cargo.toml"), "w") as f:
        f.write('[workspace]\nresolver = "3"\nmembers = ["macro_domain", "hand_domain"]\n\n'
                "[profile.release]\ndebug = 1\n")
    # The main workspace's lock file, so the dependencies are the versions the project uses.
    shutil.copy(os.path.join(ROOT, "Cargo.lock"), ws)
    write_crate(ws, "macro_domain", macro_domain(n))
    write_crate(ws, "hand_domain", hand_domain(n))
    print(f"workspace: {ws}; {n} commands and {n} events per domain", flush=True)
    return ws


def print_ratios(results, profiles, what, figure, ratio):
    """The table: per profile, `results[(crate, label)]` of both crates (formatted by `figure`)
    and their ratio (by the format string `ratio`); `what` names the figure in the header."""
    print()
    print(f"| profile | macros{what} | by hand | macros / by hand |")
    print("|---|---:|---:|---:|")
    for label in ["release" if p else "debug" for p in profiles]:
        m, h = results[("macro_domain", label)], results[("hand_domain", label)]
        print(f"| {label} | {figure(m)} | {figure(h)} | {ratio.format(m / h)} |")


def finish(ws, keep):
    """Removes the workspace, or says where it was kept."""
    if keep:
        print(f"kept {ws}")
    else:
        shutil.rmtree(ws)


TARGET_DIR = None


def cargo(ws, *args):
    env = dict(os.environ)
    if TARGET_DIR:
        env["CARGO_TARGET_DIR"] = TARGET_DIR
    subprocess.run(["cargo", *args, "--offline", "--quiet"], cwd=ws, check=True, env=env)


def timed(ws, *args):
    started = time.monotonic()
    cargo(ws, *args)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument("--quick", action="store_true",
                        help="check that both domains build: 5 commands, one debug build each")
    a = parser.parse_args()
    profiles = ([], ["--release"])
    if a.quick:
        global TARGET_DIR
        TARGET_DIR = os.path.join(ROOT, "target", "compile-time-quick")
        a.n, a.repeat, profiles = 5, 1, ([],)
    ws = make_workspace(a.n, "cqrs-compile-time-")
    results = {}
    for profile in profiles:
        label = "release" if profile else "debug"
        cargo(ws, "build", "-p", "macro_domain", "-p", "hand_domain", *profile)  # warm the deps
        for crate in ("macro_domain", "hand_domain"):
            times = []
            for _ in range(a.repeat):
                cargo(ws, "clean", "-p", crate, *profile)
                times.append(timed(ws, "build", "-p", crate, *profile))
            results[(crate, label)] = statistics.median(times)
            print(f"{crate:13} {label:8} {results[(crate, label)]:.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    print_ratios(results, profiles, "", lambda t: f"{t:.2f} s", "{:.2f}")
    finish(ws, a.keep)


if __name__ == "__main__":
    sys.exit(main())
