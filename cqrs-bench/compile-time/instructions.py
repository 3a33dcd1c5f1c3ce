#!/usr/bin/env python3
"""Compile-time cost of the macros in instructions, not seconds: `run.py`'s two domains (N
commands and N events, with the macros and by hand), each compiled under
`valgrind --tool=cachegrind --cache-sim=no`, which counts the instructions rustc executes
(the macros' expansion included: they run inside rustc). The count does not move with the
machine's load, so two builds can be compared on a busy machine where `run.py`'s wall clock
spreads by tens of percent.

How only the domain crate is counted: as in `run.py`, every dependency is built first (one
shared target directory, per profile); then `cargo clean -p <crate>` and `cargo build -p
<crate>` with a `RUSTC_WRAPPER` that runs rustc under cachegrind for the domain crates alone
(every other rustc call passes straight through). Each build is counted once: the count is
repeatable to a fraction of a percent for the same inputs and toolchain.

Usage (from anywhere; not part of `cargo test`; a 50-command debug build takes a few minutes
under valgrind):
    python3 cqrs-bench/compile-time/instructions.py [--n 50] [--debug-only] [--keep]

`CARGO_TARGET_DIR`, when set, replaces the temporary target directory, so repeated runs keep
the dependencies. Prints, per profile, each crate's instruction count and the ratio.
"""

import argparse
import glob
import importlib.util
import os
import shutil
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAINS = ("macro_domain", "hand_domain")

# Runs rustc under cachegrind when it compiles one of the domain crates, and as is otherwise.
WRAPPER = """#!/bin/sh
rustc="$1"; shift
case " $* " in
  *" --crate-name macro_domain "*|*" --crate-name hand_domain "*)
    exec valgrind --tool=cachegrind --cache-sim=no --trace-children=no \\
      --cachegrind-out-file="{out}/cg.%p" --log-file="{out}/log.%p" "$rustc" "$@" ;;
  *) exec "$rustc" "$@" ;;
esac
"""


def load_run():
    """`run.py` as a module: its domain generators and its workspace layout."""
    spec = importlib.util.spec_from_file_location("compile_time_run", os.path.join(HERE, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instructions(out):
    """The instructions counted by the cachegrind files in `out` (then removed)."""
    total = 0
    files = glob.glob(os.path.join(out, "cg.*"))
    if not files:
        sys.exit(f"no cachegrind output in {out}: did valgrind run? (see {out}/log.*)")
    for path in files:
        with open(path) as f:
            summary = [line for line in f if line.startswith("summary:")]
        if not summary:
            sys.exit(f"{path}: no summary line (rustc killed under valgrind?)")
        total += int(summary[-1].split()[1])
        os.remove(path)
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--debug-only", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    a = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install -y valgrind)")
    run = load_run()
    ws = run.make_workspace(a.n, "cqrs-compile-instructions-")
    out = os.path.join(ws, "cachegrind")
    os.makedirs(out)
    wrapper = os.path.join(ws, "rustc-wrapper.sh")
    with open(wrapper, "w") as f:
        f.write(WRAPPER.format(out=out))
    os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IEXEC)
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.join(ws, "target"))

    def cargo(*args, wrapped=False):
        e = dict(env)
        if wrapped:
            e["RUSTC_WRAPPER"] = wrapper
        subprocess.run(["cargo", *args, "--offline", "--quiet"], cwd=ws, check=True, env=e)

    profiles = ([],) if a.debug_only else ([], ["--release"])
    counts = {}
    for profile in profiles:
        label = "release" if profile else "debug"
        cargo("build", "-p", DOMAINS[0], "-p", DOMAINS[1], *profile)  # the dependencies
        for crate in DOMAINS:
            cargo("clean", "-p", crate, *profile)
            cargo("build", "-p", crate, *profile, wrapped=True)
            counts[(crate, label)] = instructions(out)
            print(f"{crate:13} {label:8} {counts[(crate, label)]:,} instructions", flush=True)
    run.print_ratios(counts, profiles, " (instructions)", lambda c: f"{c / 1e9:.3f} G", "{:.3f}")
    run.finish(ws, a.keep)


if __name__ == "__main__":
    sys.exit(main())
