#!/usr/bin/env python3
"""A long mutation-fuzzing campaign over everything the bridge reads (`make fuzz N=100000`).

Draws N cases with hypothesis from a seed (see tests/fuzzing.py for what a case is), runs each in a worker
process with a time limit, prints the count of every outcome as it goes and at the end, and saves each failing
case (its description and damaged input) under fuzz-crashes/ for a regression test. Exit status 1 when any case
failed (an escape, a hang, a crash, a write, a changed source).

    python scripts/fuzz.py -n 100000 --seed 1 --jobs 1
    python scripts/fuzz.py -n 2000 --targets inspect shim
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests import fuzzing  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--cases", type=int, default=1000, help="number of cases (default: 1000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--targets", nargs="+", choices=sorted(set(
        fuzzing.TF1_TARGETS + fuzzing.TF2_TARGETS + fuzzing.INPUT_TARGETS + fuzzing.TENSOR_TARGETS)),
        help="entry points (default: all)")
    parser.add_argument("--crashes", default=os.path.join(ROOT, "fuzz-crashes"),
                        help="folder for failing cases (default: fuzz-crashes/)")
    parser.add_argument("--report-every", type=int, default=500, help="print the counts every N cases")
    parser.add_argument("--summary", help="also write the final counts as JSON to this file")
    args = parser.parse_args(argv)
    for flag, value in (("-n", args.cases), ("--jobs", args.jobs), ("--report-every", args.report_every)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt  # SIGTERM (and SIGINT of a background job) ends the run with its counts

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    seed = fuzzing.random_seed() if args.seed is None else args.seed
    workdir = tempfile.mkdtemp(prefix="bridge-fuzz-")
    pool = fuzzing.WorkerPool(workdir, processes=args.jobs)
    counts = collections.Counter()
    per_target = collections.defaultdict(collections.Counter)
    failures = []
    started = time.monotonic()
    print(f"fuzz: {args.cases} cases, seed {seed}, {args.jobs} worker(s), work dir {workdir}", flush=True)

    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=args.jobs)
    free_slots = list(range(args.jobs))
    pending = []

    def record(case, result):
        counts[result["outcome"]] += 1
        per_target[case.target][result["outcome"]] += 1
        if result["outcome"] not in fuzzing.OK_OUTCOMES:
            seeds = fuzzing.prepare_seeds(pool.seeds_dir)
            where = fuzzing.save_failure(case, result, seeds, args.crashes)
            failures.append(where)
            print(_printable(f"fuzz: {result['outcome'].upper()} {case.describe()}\n  {result['detail'][:500]}\n"
                             f"  saved in {where}"), flush=True)
        done = sum(counts.values())
        if done % args.report_every == 0:
            print(f"fuzz: {done} cases, {time.monotonic() - started:.0f} s: {_counts(counts)}", flush=True)
            write_summary()

    def write_summary() -> None:
        if args.summary:
            with open(args.summary, "w") as f:
                json.dump({"cases": sum(counts.values()), "seconds": round(time.monotonic() - started), "seed": seed,
                           "outcomes": dict(counts), "per_target": {t: dict(c) for t, c in per_target.items()}},
                          f, indent=2, sort_keys=True)

    def drain(block: bool) -> None:
        while pending and (block or len(pending) >= args.jobs):
            future, case, slot = pending.pop(0)
            free_slots.append(slot)
            record(case, future.result())

    @settings(max_examples=args.cases, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(case=fuzzing.case_strategy(tuple(args.targets) if args.targets else None))
    def campaign(case):
        drain(block=False)
        slot = free_slots.pop(0)
        pending.append((executor.submit(pool.run, case, slot), case, slot))

    try:
        campaign()
        drain(block=True)
    except KeyboardInterrupt:
        print("fuzz: interrupted", flush=True)
    finally:
        executor.shutdown(wait=True)
        pool.close()
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(f"fuzz: done: {total} cases in {elapsed:.0f} s (seed {seed}): {_counts(counts)}")
    for target in sorted(per_target):
        print(f"  {target}: {_counts(per_target[target])}")
    if failures:
        print(f"fuzz: {len(failures)} failing cases saved under {args.crashes}")
    write_summary()
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(counts[o] for o in fuzzing.BAD_OUTCOMES) else 0


def _printable(text: str) -> str:
    """`text` as UTF-8 can carry it: a damaged name may hold a lone surrogate ("\\ud800"), which print refuses."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _counts(counts) -> str:
    order = fuzzing.OK_OUTCOMES + fuzzing.BAD_OUTCOMES
    return ", ".join(f"{o} {counts[o]}" for o in order if counts[o] or o in ("ok", "error", "escape", "hang"))


if __name__ == "__main__":
    sys.exit(main())
