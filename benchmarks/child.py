#!/usr/bin/env python
"""What the benchmark measures in a process of its own (fresh memory, cold caches); prints one JSON line.

    python benchmarks/child.py naive SRC DST            # load_v2 of every graph variant + tf.saved_model.save
    python benchmarks/child.py convert SRC DST [--no-verify]   # bridge.convert (verification on by default)
    python benchmarks/child.py baseline MODULE          # TensorFlow's own peak RSS; the module's weight bytes
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

from benchmarks.timing import PhaseClock, PhaseTimer, cpu_seconds, current_rss_bytes, peak_rss_bytes  # noqa: E402


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


def convert(src: str, dst: str, verify: bool = True, optimize: bool = False) -> dict:
    """`bridge convert SRC DST` as a user runs it: conversion, then the parity verification of what was written
    (`verify=False`: --no-verify). `phases`: exclusive seconds per phase (see `instrument`), `phase_memory`: MiB
    the peak RSS rose by in each, `side_by_side`: seconds of each model's runs while both run at once."""
    import tensorflow as tf  # noqa: F401  (imported before the clock starts, as for the naive recipe)

    import bridge

    timer = instrument()
    clock = PhaseClock()
    try:
        result = bridge.convert(src, dst, progress=clock, verify=verify, optimize=optimize)
    finally:
        timer.restore()
    seconds, cpu = time.perf_counter() - clock.start, cpu_seconds() - clock.cpu_start
    verify_event = clock.first("verifying")
    convert_seconds = verify_event[0] if verify_event else seconds
    return {"seconds": seconds, "convert_seconds": convert_seconds, "verify_seconds": seconds - convert_seconds,
            "cpu_seconds": cpu, "convert_cpu_seconds": verify_event[3] if verify_event else cpu,
            "peak_rss": peak_rss_bytes(),
            "peak_rss_before_verify": verify_event[2] if verify_event else peak_rss_bytes(),
            "source_bytes": result.source_bytes, "output_bytes": result.destination_bytes,
            "direction": result.direction, "verified": None if result.verification is None else
            result.verification.passed, "phases": timer.rounded(seconds), "phase_memory": timer.memory(),
            "side_by_side": {k: round(v, 2) for k, v in timer.concurrent.items()},
            "parity": None if result.verification is None else _parity(result.verification)}


def _parity(report) -> dict:
    """What a verification found: per mode, the largest |A-B|, the largest |A-B| / max|A| of an output (its scale),
    the largest relative difference, and whether every output of the mode was bit-identical."""
    result = {"passed": report.passed}
    for row in report.to_json()["outputs"]:
        mode = result.setdefault(row["mode"], {"max_abs": 0.0, "max_abs_over_scale": 0.0, "max_rel": 0.0,
                                               "identical": True})
        mode["max_abs"] = max(mode["max_abs"], row["max_abs"] or 0.0)
        if row.get("scale"):
            mode["max_abs_over_scale"] = max(mode["max_abs_over_scale"], (row["max_abs"] or 0.0) / row["scale"])
        mode["max_rel"] = max(mode["max_rel"], row.get("max_rel") or 0.0)
        mode["identical"] = mode["identical"] and bool(row["identical"])
    return result


def instrument():
    """A PhaseTimer on the steps of `bridge.convert` in both directions (wrapped, not changed):

    TF1->TF2: read (module, safety scan, variables), trace, save; TF2->TF1: load, build graph variants, write;
    verification: load the written model / prepare the in-memory source, run both models (side by side when they
    share no variable: then each side's own runs, the TF1 module in memory or as written and the TF2 SavedModel,
    per mode, are `concurrent` phases), and the rest (snapshots of the variables, comparing, reporting) as
    'verify: other'.
    """
    import tensorflow as tf

    from bridge.conversion import converter, tf1_to_tf2, tf2_to_tf1
    from bridge.parity import comparison, runners
    from legacy.engine import from_saved_model

    timer = PhaseTimer()
    verifying = []  # set once verification starts: what runs after it is one of its phases

    def outside_verify(name):
        return lambda *a, **k: None if verifying else name

    def verify_label(*args, **kwargs):
        verifying.append(True)
        return "verify: other"

    timer.wrap(tf1_to_tf2, "adapt", outside_verify("read"))
    timer.wrap(tf1_to_tf2.ModuleAdapter, "trace_for_export", "trace")
    timer.wrap(tf.saved_model, "save", "save")
    timer.wrap(tf.saved_model, "load", outside_verify("load"))
    timer.wrap(from_saved_model, "_build_variant", outside_verify("build graph variants"))
    timer.wrap(tf2_to_tf1, "write", "write")
    timer.wrap(converter, "_verify", verify_label)
    timer.wrap(comparison._Session, "_each_side", "verify: run both models (side by side)")

    def load_label(model, *args, **kwargs):
        if isinstance(model, (str, os.PathLike)):
            from bridge import formats

            kind = "TF1 module" if formats.detect(os.fspath(model)).name == formats.TF1_HUB else "TF2 SavedModel"
            return f"verify: load {kind}"
        return "verify: prepare the in-memory source"

    timer.wrap(comparison, "open_runner", load_label)
    timer.wrap(runners, "open_runner", load_label)
    for cls in (runners.ModuleRunner, runners.SavedModelRunner, runners.Runner):
        for method in ("run_many", "run"):
            if method in vars(cls):
                timer.wrap(cls, method, lambda self, *a, training=False, **k:
                           f"verify: run {'TF1 module' if isinstance(self, runners.ModuleRunner) else 'TF2 SavedModel'}"
                           f" ({'training' if training else 'inference'})")
    return timer


def baseline(module: str) -> dict:
    """TensorFlow's own footprint: imported, devices started, one op run; and the size of the module's weights."""
    import glob

    import tensorflow as tf

    tf.constant(1.0).numpy()
    weights = sum(os.path.getsize(f) for f in glob.glob(os.path.join(module, "variables", "variables.data-*")))
    return {"peak_rss": peak_rss_bytes(), "weight_bytes": weights}


def cold(kind: str, path: str, size: str) -> dict:
    """Load a model and run its first batch (one image) in a fresh process; the imports are timed apart."""
    import numpy as np
    import tensorflow as tf

    height, width = (int(x) for x in size.split("x"))
    images = np.random.default_rng(0).uniform(size=(1, height, width, 3)).astype(np.float32)
    extra = {}
    if kind == "converted":
        timer = _instrument_load()
        imported = time.perf_counter()
        obj = tf.saved_model.load(path)
        loaded = time.perf_counter()
        timer.restore()
        extra = {"load_phases": timer.rounded(loaded - imported), "functions": _library_functions(path),
                 "regularization_losses": len(getattr(obj, "regularization_losses", []))}
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
            "peak_rss": peak_rss_bytes(), **extra}


def _instrument_load():
    """A PhaseTimer on the steps of `tf.saved_model.load`: turning the function library into Python graphs,
    restoring the checkpoint into the variables, and the rest (recreating the objects, their captures)."""
    from tensorflow.python.saved_model import function_deserialization, load

    timer = PhaseTimer()
    timer.wrap(function_deserialization, "load_function_def_library", "function library")
    timer.wrap(load.Loader, "_restore_checkpoint", "checkpoint restore")
    return timer


def _library_functions(path: str) -> dict:
    """How many functions the SavedModel's library holds, and where its checkpoint saver is (the save and restore
    ops TF1 loaders and TensorFlow Serving run): traced functions, which `tf.saved_model.load` imports too, or
    plain nodes of the main graph, which it skips."""
    from tensorflow.core.protobuf import saved_model_pb2

    from legacy.format.graph_saver import SCOPE

    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        meta_graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0]
    library = meta_graph.graph_def.library.function
    saver = [f for f in library if f.signature.name.startswith(("__inference__traced_save",
                                                                  "__inference__traced_restore"))]
    filename = meta_graph.saver_def.filename_tensor_name.split(":")[0]
    graph_saver = [n for n in meta_graph.graph_def.node if n.name.startswith(f"{SCOPE}/") or n.name == filename]
    return {"total": len(library), "saver": len(saver), "saver_nodes": sum(len(f.node_def) for f in saver),
            "graph_saver_nodes": 0 if saver else len(graph_saver), "nodes": sum(len(f.node_def) for f in library)}


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
        if task == "convert":
            q.add_argument("--no-verify", action="store_true", help="bridge convert --no-verify")
            q.add_argument("--optimize", action="store_true", help="bridge convert --optimize")
    q = sub.add_parser("baseline")
    q.add_argument("module")
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
        return convert(args.src, args.dst, verify=not args.no_verify, optimize=args.optimize)
    if args.task == "baseline":
        return baseline(args.module)
    if args.task == "cold":
        return cold(args.kind, args.path, args.size)
    return harness(args.a, args.b, args.count, args.batch_size, args.signature)


def main(argv=None) -> None:
    print(json.dumps(run(argv)), flush=True)


if __name__ == "__main__":
    main()
