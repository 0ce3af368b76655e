#!/usr/bin/env python
"""What the benchmark measures in a process of its own (fresh memory, cold caches); prints one JSON line.

    python benchmarks/child.py naive SRC DST            # load_v2 of every graph variant + tf.saved_model.save
    python benchmarks/child.py convert SRC DST          # bridge.convert (verification on, as by default)
    python benchmarks/child.py cold KIND PATH HxW       # KIND: converted, hub_load, shim; load + first batch
    python benchmarks/child.py harness A B N [--batch-size 8] [--signature default]

Every task reports `peak_rss` (bytes, ru_maxrss of this process) and its own timings in seconds, measured after the
imports unless a field says otherwise. `run.py` starts these with the same interpreter and parses the last line.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before TensorFlow is imported: cold-start timings count the imports separately

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.timing import PhaseClock, cpu_seconds, current_rss_bytes, peak_rss_bytes  # noqa: E402


def directory_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def naive(src: str, dst: str) -> dict:
    """The recipe without the bridge: each graph variant through load_v2 (what hub.load does), saved together.

    Each load_v2 creates its own copy of every variable, so the SavedModel holds the weights once per variant.
    """
    import tensorflow as tf

    from tensorflow.core.protobuf import saved_model_pb2

    start, cpu_start = time.perf_counter(), cpu_seconds()
    with open(os.path.join(src, "saved_model.pb"), "rb") as f:
        tag_sets = [sorted(m.meta_info_def.tags) for m in saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs]
    root = tf.Module()
    signatures = {}
    for tags in tag_sets:
        loaded = tf.compat.v1.saved_model.load_v2(src, tags=tags)
        prefix = "_".join(tags)
        setattr(root, prefix or "inference", loaded)
        for name, fn in loaded.signatures.items():
            signatures[f"{prefix}_{name}" if prefix else name] = fn
    signatures["serving_default"] = signatures["default"]
    tf.saved_model.save(root, dst, signatures=signatures)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    return {"seconds": seconds, "convert_seconds": seconds, "verify_seconds": 0.0, "cpu_seconds": cpu,
            "convert_cpu_seconds": cpu, "peak_rss": peak_rss_bytes(),
            "peak_rss_before_verify": peak_rss_bytes(), "source_bytes": directory_bytes(src),
            "output_bytes": directory_bytes(dst), "variants": len(tag_sets)}


def convert(src: str, dst: str) -> dict:
    """`bridge convert SRC DST` as a user runs it: conversion, then the parity verification of what was written."""
    import tensorflow as tf  # noqa: F401  (imported before the clock starts, as for the naive recipe)

    import bridge

    clock = PhaseClock()
    result = bridge.convert(src, dst, progress=clock)
    seconds, cpu = time.perf_counter() - clock.start, cpu_seconds() - clock.cpu_start
    verify = clock.first("verifying")
    convert_seconds = verify[0] if verify else seconds
    steps = [e for e in clock.events if not e[1].startswith("verifying:")]  # not the per-batch lines
    ends = [e[0] for e in steps[1:]] + [seconds]
    phases = [[message, round(end - t, 2)] for (t, message, _, _), end in zip(steps, ends)]
    return {"seconds": seconds, "convert_seconds": convert_seconds, "verify_seconds": seconds - convert_seconds,
            "cpu_seconds": cpu, "convert_cpu_seconds": verify[3] if verify else cpu,
            "peak_rss": peak_rss_bytes(), "peak_rss_before_verify": verify[2] if verify else peak_rss_bytes(),
            "source_bytes": result.source_bytes, "output_bytes": result.destination_bytes,
            "direction": result.direction, "verified": None if result.verification is None else
            result.verification.passed, "phases": phases}


def cold(kind: str, path: str, size: str) -> dict:
    """Load a model and run its first batch (one image) in a fresh process; the imports are timed apart."""
    import numpy as np
    import tensorflow as tf

    height, width = (int(x) for x in size.split("x"))
    images = np.random.default_rng(0).uniform(size=(1, height, width, 3)).astype(np.float32)
    if kind == "converted":
        imported = time.perf_counter()
        obj = tf.saved_model.load(path)
        loaded = time.perf_counter()
        obj(images, training=False).numpy()
    elif kind == "hub_load":
        import tensorflow_hub as hub

        imported = time.perf_counter()
        fn = hub.load(path).signatures["default"]
        loaded = time.perf_counter()
        fn(images=tf.constant(images))["default"].numpy()
    elif kind == "shim":
        from legacy import hub

        imported = time.perf_counter()
        module = hub.Module(path)
        loaded = time.perf_counter()
        module(images).numpy()
    else:
        raise SystemExit(f"unknown cold-start kind {kind!r}")
    done = time.perf_counter()
    return {"import_seconds": imported - STARTED, "load_seconds": loaded - imported,
            "first_batch_seconds": done - loaded, "seconds": done - imported, "total_seconds": done - STARTED,
            "peak_rss": peak_rss_bytes()}


def harness(a: str, b: str, count: int, batch_size: int, signature: str) -> dict:
    """The parity harness on `count` random images, after a one-batch warm-up; memory before and after."""
    import bridge
    from bridge.parity.runners import open_runner

    ra, rb = open_runner(a), open_runner(b)  # loaded once for the warm-up and the measured run
    bridge.compare(ra, rb, random=batch_size, batch_size=batch_size, signatures=[signature], seed=1)
    rss_before, peak_before = current_rss_bytes(), peak_rss_bytes()
    start = time.perf_counter()
    report = bridge.compare(ra, rb, random=count, batch_size=batch_size, signatures=[signature], seed=0)
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": seconds, "images_per_second": count / seconds, "passed": report.passed,
            "rss_before": rss_before, "peak_rss_before": peak_before, "peak_rss": peak_rss_bytes(),
            "rss_after": current_rss_bytes()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="task", required=True)
    for task in ("naive", "convert"):
        q = sub.add_parser(task)
        q.add_argument("src")
        q.add_argument("dst")
    q = sub.add_parser("cold")
    q.add_argument("kind", choices=["converted", "hub_load", "shim"])
    q.add_argument("path")
    q.add_argument("size", help="HEIGHTxWIDTH of the first batch's image")
    q = sub.add_parser("harness")
    q.add_argument("a")
    q.add_argument("b")
    q.add_argument("count", type=int)
    q.add_argument("--batch-size", type=int, default=8)
    q.add_argument("--signature", default="default")
    return p


def run(argv) -> dict:
    """The task named by `argv` (as on the command line); its result."""
    args = parser().parse_args(argv)
    if args.task == "naive":
        return naive(args.src, args.dst)
    if args.task == "convert":
        return convert(args.src, args.dst)
    if args.task == "cold":
        return cold(args.kind, args.path, args.size)
    return harness(args.a, args.b, args.count, args.batch_size, args.signature)


def main(argv=None) -> None:
    print(json.dumps(run(argv)), flush=True)


if __name__ == "__main__":
    main()
