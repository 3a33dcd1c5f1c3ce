#!/usr/bin/env python3
"""Two checkouts' macro cost side by side: `run.py`'s two domains (macros and by hand), built
against this checkout and against another one (`--base`, say an unchanged copy made with
`git archive`), with the builds interleaved so that a machine whose load drifts (other builds
running) slows all four crates alike.

Each round cleans and times, in turn, for each checkout, `macro_domain` then `hand_domain`
(`cargo clean -p` then `cargo build -p`, as `run.py` does: the domain crate alone on a warm
dependency cache; the proc macros, `syn` and the runtime are built before the first round and
never timed). Printed per profile and checkout: the median wall clock of each crate, their
ratio (the figure `run.py` prints), the median CPU time (user + system of cargo and rustc, less
sensitive to the load than the wall clock) and its ratio, and the range of the per-round wall
ratios.

Usage:
    python3 cqrs-bench/compile-time/compare.py --base /tmp/base-checkout [--rounds 6] [--n 50]
        [--target-dir-prefix /tmp/ct-target] [--debug-only]

Each checkout gets its own target directory (`<prefix>-base`, `<prefix>-new`), kept between
runs so that a second comparison does not rebuild the dependencies.
"""

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_generator(root):
    """The `run.py` of checkout `root`, as a module (its domain generators)."""
    path = os.path.join(root, "cqrs-bench", "compile-time", "run.py")
    spec = importlib.util.spec_from_file_location(f"run_{abs(hash(root))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workspace(root, n, parent):
    run = load_generator(root)
    ws = tempfile.mkdtemp(prefix="ws-", dir=parent)
    with open(os.path.join(ws, "Cargo.toml"), "w") as f:
        f.write('[workspace]\nresolver = "3"\nmembers = ["macro_domain", "hand_domain"]\n\n'
                "[profile.release]\ndebug = 1\n")
    shutil.copy(os.path.join(root, "Cargo.lock"), ws)
    run.write_crate(ws, "macro_domain", run.macro_domain(n))
    run.write_crate(ws, "hand_domain", run.hand_domain(n))
    return ws


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the other checkout's root directory")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--target-dir-prefix", default=os.path.join(tempfile.gettempdir(), "ct-target"))
    parser.add_argument("--debug-only", action="store_true")
    a = parser.parse_args()
    parent = tempfile.mkdtemp(prefix="cqrs-compile-compare-")
    trees = {"base": os.path.abspath(a.base), "new": HERE}
    spaces = {name: workspace(root, a.n, parent) for name, root in trees.items()}

    def cargo(name, *args):
        env = dict(os.environ, CARGO_TARGET_DIR=f"{a.target_dir_prefix}-{name}")
        subprocess.run(["cargo", *args, "--offline", "--quiet"], cwd=spaces[name], check=True,
                       env=env)

    print(f"base: {trees['base']}; new: {trees['new']}; {a.n} commands and events; "
          f"{a.rounds} rounds", flush=True)
    print("| profile | checkout | macros | by hand | wall ratio | macros CPU | by hand CPU "
          "| CPU ratio | wall ratio per round |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|", flush=True)
    profiles = ([],) if a.debug_only else ([], ["--release"])
    for profile in profiles:
        label = "release" if profile else "debug"
        for name in trees:
            cargo(name, "build", "-p", "macro_domain", "-p", "hand_domain", *profile)
        times = {}
        for _ in range(a.rounds):
            for name in trees:
                for crate in ("macro_domain", "hand_domain"):
                    cargo(name, "clean", "-p", crate, *profile)
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.monotonic()
                    cargo(name, "build", "-p", crate, *profile)
                    wall = time.monotonic() - started
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    times.setdefault((name, crate), []).append((wall, cpu))
        for name in trees:
            m, h = times[(name, "macro_domain")], times[(name, "hand_domain")]
            mw, hw = (statistics.median(t[0] for t in x) for x in (m, h))
            mc, hc = (statistics.median(t[1] for t in x) for x in (m, h))
            per = sorted(x[0] / y[0] for x, y in zip(m, h))
            print(f"| {label} | {name} | {mw:.2f} s | {hw:.2f} s | **{mw / hw:.2f}** | "
                  f"{mc:.2f} s | {hc:.2f} s | {mc / hc:.2f} | {per[0]:.2f}–{per[-1]:.2f} |",
                  flush=True)
    shutil.rmtree(parent)


if __name__ == "__main__":
    sys.exit(main())
