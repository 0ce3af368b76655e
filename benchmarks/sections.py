"""The five measurements of the benchmark, each returning a table and the targets it checks.

In-process sections (`inference`, `training`, the harness throughput) load every contender once and interleave
their repetitions (`timing.interleaved`); process-level sections (`conversion`, `cold_start`, the harness memory)
run each measurement in a fresh interpreter (`child.py`) and read its peak resident memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time
from typing import Callable

import numpy as np

from benchmarks import contenders as cont
from benchmarks.report import Row, Table, Target, log, mib, ms, ratio, secs
from benchmarks.timing import interleaved, median, paired_ratio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = os.path.join(ROOT, "benchmarks", "child.py")
FLAT = 1.05  # the harness's memory is flat when its peak RSS grows by at most 5% from the smaller N to the larger


@dataclasses.dataclass
class Config:
    """What to measure and how often. The defaults are the full `make bench` run."""

    module: str  # the TF1 Hub module
    work: str  # scratch directory for conversion outputs (emptied by run.py)
    image_size: tuple = (224, 224)
    reps: int = 5  # interleaved repetitions of the in-process measurements
    batch_sizes: tuple = (1, 8, 32)
    large_batch: int = 32  # batches this large get `large_batch_reps` repetitions (seconds per call on 2 cores)
    large_batch_reps: int = 3
    train_batch: int = 8
    conversion_reps: int = 1  # each conversion is a process of its own, tens of seconds on 2 cores
    cold_reps: int = 2
    harness_sizes: tuple = (100, 1000)  # images per harness run for the memory measurement
    harness_images: int = 24  # images per harness run for the in-process throughput measurement
    harness_reps: int = 3
    harness_batch: int = 8
    beam_images: int = 96  # JPEG files through the local harness and the Beam pipeline (1 and 2 workers)
    min_seconds: float = 0.3  # a timing sample repeats a call until it lasts this long
    python: str = sys.executable
    # Run child.py's tasks in this process instead (smoke tests: the plumbing without the interpreter start-ups;
    # memory and cold-start numbers are then meaningless).
    in_process: bool = False
    log: Callable[[str], None] = log

    @property
    def converted(self) -> str:
        """The TF2 SavedModel the bridge converts the module into (written by the conversion section)."""
        return os.path.join(self.work, "converted_tf2")

    @property
    def optimized(self) -> str:
        """The `bridge convert --optimize` conversion of the module (written by the inference section)."""
        return os.path.join(self.work, "optimized_tf2")

    def path_for(self, key: str) -> str:
        """What inference contender `key` loads."""
        return {"converted": self.converted, "optimized": self.optimized}.get(key, self.module)

    @property
    def size_text(self) -> str:
        return f"{self.image_size[0]}x{self.image_size[1]}"


def run_child(cfg: Config, *args: str) -> dict:
    """Run `child.py ARGS` in a fresh interpreter; its JSON result plus `wall_seconds` (the whole process)."""
    if cfg.in_process:
        from benchmarks import child

        start = time.perf_counter()
        result = json.loads(json.dumps(child.run(list(args))))
        result["wall_seconds"] = time.perf_counter() - start
        return result
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([cfg.python, CHILD, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"child.py {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def _images(n: int, size: tuple, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, size[0], size[1], 3)).astype(np.float32)


def _spread(samples: list) -> float:
    """Half the range of the samples, relative to their median: how noisy the machine was for this contender."""
    m = median(samples)
    return (max(samples) - min(samples)) / 2 / m if samples and m > 0 else math.nan


def failure(e: Exception) -> str:
    """One line saying why a measurement failed: the exception, or the last line a child process printed."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


def _failed_row(key: str, label: str, columns: list, reason: str) -> Row:
    return Row(key, [label, "failed"] + ["-"] * (len(columns) - 2), {"error": reason})


def _rotate(items: list, rep: int) -> list:
    shift = rep % len(items)
    return items[shift:] + items[:shift]


# -- 1. inference ----------------------------------------------------------------------------------------------


# Ops that move data or handles rather than compute: left out when comparing what contenders execute.
_PLUMBING = frozenset({"_Arg", "_Retval", "VarHandleOp", "ReadVariableOp", "NoOp", "Const", "_EagerConst", "Identity",
                       "_Send", "_Recv", "_HostSend", "_HostRecv", "Placeholder"})


def compute_ops(graphs: list) -> dict:
    """Op type -> count over the executed (post-Grappler) graphs, plumbing left out."""
    counts: dict = {}
    for graph in graphs:
        if any(node.op == "RestoreV2" for node in graph.node):
            continue  # a checkpoint restore that ran while the model loaded, not the model
        for node in graph.node:
            if node.op not in _PLUMBING:
                counts[node.op] = counts.get(node.op, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _graph_note(ops: dict) -> str:
    """Whether every contender executes the Session's compute ops after Grappler, and the differences if not."""
    if "session" not in ops:
        return "executed graphs were not captured"
    base = ops["session"]
    same = [k for k, v in ops.items() if k != "session" and v == base]
    text = ("after Grappler, the Session executes " + ", ".join(f"{n} {op}" for op, n in list(base.items())[:6]) +
            (", ..." if len(base) > 6 else "") + f"; the same compute ops: {', '.join(same) or 'none'}")
    for key, counts in ops.items():
        if key != "session" and counts != base:
            diff = {op: (base.get(op, 0), counts.get(op, 0)) for op in set(base) | set(counts)
                    if base.get(op, 0) != counts.get(op, 0)}
            text += f"; {key} differs: " + ", ".join(f"{op} {a}→{b}" for op, (a, b) in sorted(diff.items()))
    return text


def executed_ops(cfg: Config, contenders: list, images: np.ndarray) -> dict:
    """Contender key -> the compute ops it executes after Grappler, from one call with run metadata.

    Eager contenders record their graphs only on their first call, so fresh instances are made for this (after the
    timings: a diagnostic must not disturb them); Session contenders are asked on a call of their own.
    """
    ops = {}
    for c in contenders:
        try:
            fresh = c if c.key in ("session", "shim_graph") else cont.INFERENCE[c.key](cfg.path_for(c.key))
            ops[c.key] = compute_ops(fresh.executed_graphs(images))
            if fresh is not c:
                fresh.close()
        except Exception as e:  # noqa: BLE001  (a diagnostic only: it relies on TF internals)
            cfg.log(f"inference: could not capture the executed graphs of {c.key}: {e}")
    return ops


def dispatch_overhead(contenders: list, images: np.ndarray, calls: int = 20) -> dict:
    """Contender key -> (ms per call, ms of it in Python before and after TensorFlow's runtime runs the graph).

    The runtime's share is timed around the one call that hands the graph to it: `Context.call_function` for an
    eager contender (a tf.function call), `Session._call_tf_sessionrun` for a graph-mode one; the rest is Python
    dispatch (binding the arguments, matching the traced function, feeding and fetching).
    """
    from tensorflow.python.eager import context

    result = {}
    for c in contenders:
        owner, attr = (c.session, "_call_tf_sessionrun") if c.session is not None else \
            (context.context(), "call_function")
        inside = [0.0]
        original = getattr(owner, attr)

        def timed(*args, original=original, inside=inside, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - start

        setattr(owner, attr, timed)  # an instance attribute: the class's method is untouched
        try:
            c.fn(images)
            inside[0] = 0.0
            start = time.perf_counter()
            for _ in range(calls):
                c.fn(images)
            total = time.perf_counter() - start
        finally:
            delattr(owner, attr)
        result[c.key] = (total / calls * 1e3, (total - inside[0]) / calls * 1e3)
    return result


def _optimized_conversion(cfg: Config) -> dict:
    """`bridge convert --optimize` of the module (verified), in a process of its own: its result with the parity
    the verification found."""
    cfg.log("inference: converting the module with --optimize")
    shutil.rmtree(cfg.optimized, ignore_errors=True)
    return run_child(cfg, "convert", cfg.module, cfg.optimized, "--optimize")


def inference(cfg: Config) -> tuple:
    contenders, failed = [], {}
    optimized = None
    try:
        optimized = _optimized_conversion(cfg)
    except RuntimeError as e:
        failed["optimized"] = failure(e)
    cfg.log("inference: loading the contenders")
    for key, make in cont.INFERENCE.items():
        if key in failed:
            continue
        try:
            contenders.append(make(cfg.path_for(key)))
        except Exception as e:  # noqa: BLE001  (one broken contender must not hide the others)
            if key == "session":
                raise
            failed[key] = failure(e)
            cfg.log(f"inference: {key} failed to load: {failed[key]}")
    batches = {b: _images(b, cfg.image_size, seed=b) for b in cfg.batch_sizes}
    samples = {}
    for b in cfg.batch_sizes:
        reps = cfg.reps if b < cfg.large_batch else min(cfg.reps, cfg.large_batch_reps)
        cfg.log(f"inference: batch {b}, {len(contenders)} contenders, {reps} interleaved repetitions")
        for key, values in interleaved({c.key: (lambda c=c, x=batches[b]: c.fn(x)) for c in contenders}, reps,
                                       cfg.min_seconds).items():
            samples[(key, b)] = values
    ops = executed_ops(cfg, contenders, batches[cfg.batch_sizes[0]])
    try:
        dispatch = dispatch_overhead(contenders, batches[cfg.batch_sizes[0]])
    except Exception as e:  # noqa: BLE001  (a diagnostic only: it relies on TF internals)
        dispatch = {}
        cfg.log(f"inference: could not time the Python dispatch: {e}")
    for c in contenders:
        c.close()
    med = {k: median(v) for k, v in samples.items()}
    reps_text = str(cfg.reps) if max(cfg.batch_sizes) < cfg.large_batch else \
        f"{cfg.reps}, {min(cfg.reps, cfg.large_batch_reps)} from batch {cfg.large_batch}"
    table = Table("inference", f"1. Inference: ms per batch (median of {reps_text}), ratio to the Session baseline",
                  ["contender"] + [f"batch {b}" for b in cfg.batch_sizes])
    for c in contenders:
        cells = [c.label]
        data = {}
        for b in cfg.batch_sizes:
            r = med[(c.key, b)] / med[("session", b)]
            cells.append(f"{ms(med[(c.key, b)])} ({ratio(r)})")
            data[f"batch_{b}"] = {"seconds": med[(c.key, b)], "ratio_to_session": r,
                                  "samples": samples[(c.key, b)]}
        table.rows.append(Row(c.key, cells, data))
    for key, reason in failed.items():
        table.rows.insert(list(cont.INFERENCE).index(key), _failed_row(key, cont.LABELS[key], table.columns, reason))
        table.errors.append(f"{key}: {reason}")
    if "converted" not in failed:
        table.notes.append("converted model throughput: " + ", ".join(
            f"{b / med[('converted', b)]:.1f} images/s at batch {b}" for b in cfg.batch_sizes))
    if optimized is not None:
        p = optimized.get("parity") or {}
        inf, tr = p.get("inference", {}), p.get("training", {})
        table.notes.append(
            f"--optimize conversion: {optimized['seconds']:.1f} s verified ({optimized['verify_seconds']:.1f} s of "
            f"it verification), output {optimized['output_bytes'] / 1e6:.1f} MB ({optimized['output_bytes'] / optimized['source_bytes']:.2f}x the module: "
            f"the weights as variables and frozen); parity against the module: inference max |A-B| "
            f"{inf.get('max_abs', float('nan')):.3g} ({inf.get('max_abs_over_scale', float('nan')):.2g} of the output's "
            f"scale, max relative {inf.get('max_rel', float('nan')):.2g}), training mode "
            f"{'bit-identical' if tr.get('identical') else 'max |A-B| %.3g' % tr.get('max_abs', float('nan'))}")
        if any(r.key == "optimized" for r in table.rows):
            table.row("optimized").data["conversion"] = optimized
    spreads = {c.key: max(_spread(samples[(c.key, b)]) for b in cfg.batch_sizes) for c in contenders}
    table.notes.append(_graph_note(ops))
    if dispatch:
        table.notes.append(
            f"Python dispatch per call at batch {cfg.batch_sizes[0]} (the time outside TensorFlow's runtime: binding "
            "arguments, matching the traced function and its captured variables, feeding and fetching): "
            + ", ".join(f"{k} {outside:.2f} of {total:.1f} ms" for k, (total, outside) in dispatch.items()))
    table.notes.append("run-to-run noise (half the range of the repetitions, relative to the median, worst batch "
                       "size): " + ", ".join(f"{k} ±{v:.0%}" for k, v in spreads.items()))

    def ratios(a: str, b: str) -> list | None:
        """Per batch size: (ratio of the medians, lowest and highest per-repetition ratio); None if one failed."""
        if a in failed or b in failed:
            return None
        return [(med[(a, s)] / med[(b, s)],) + paired_ratio(samples[(a, s)], samples[(b, s)])[1:]
                for s in cfg.batch_sizes]

    def measured(values: list | None) -> str:
        if values is None:
            return "not measured (a contender failed)"
        return ", ".join(f"{ratio(m)} at batch {b} ({lo:.2f}-{hi:.2f})"
                         for b, (m, lo, hi) in zip(cfg.batch_sizes, values))

    def met(values: list | None, limit: float) -> bool | None:
        return None if values is None else all(round(m, 2) <= limit for m, _, _ in values)

    conv, eager, graph = ratios("converted", "session"), ratios("shim_eager", "converted"), \
        ratios("shim_graph", "session")
    opt = ratios("optimized", "session")
    targets = [
        Target("converted_inference", "converted model inference ≤ 1.00x the Session baseline",
               measured(conv), met(conv, 1.00)),
        Target("optimized_inference", "`--optimize` conversion's inference ≤ 0.90x the Session baseline (parity "
                                      "in the notes of table 1)", measured(opt), met(opt, 0.90)),
        Target("shim_eager", "shim hub.Module (eager) ≤ 1.05x the converted model", measured(eager),
               met(eager, 1.05)),
        Target("shim_graph", "shim hub.Module (graph mode) ≤ 1.05x the Session baseline", measured(graph),
               met(graph, 1.05)),
    ]
    return table, targets


# -- 2. training -----------------------------------------------------------------------------------------------


def output_width(module_dir: str) -> int:
    """The width of the default signature's default output ([batch, width])."""
    meta_graph = cont.read_meta_graph(module_dir, ())
    dims = meta_graph.signature_def[cont.SIGNATURE].outputs[cont.SIGNATURE].tensor_shape.dim
    return int(dims[-1].size)


def training(cfg: Config) -> tuple:
    cfg.log("training: loading the contenders")
    weights = np.random.default_rng(1).standard_normal(
        (cfg.train_batch, output_width(cfg.module))).astype(np.float32)
    contenders = cont.training_contenders(cfg.module, cfg.converted, weights)
    images = _images(cfg.train_batch, cfg.image_size, seed=7)
    losses = {}

    def call(c):
        def fn():
            losses[c.key] = float(c.fn(images))
        return fn

    cfg.log(f"training: batch {cfg.train_batch}, {cfg.reps} interleaved repetitions")
    samples = interleaved({c.key: call(c) for c in contenders}, cfg.reps, cfg.min_seconds)
    for c in contenders:
        c.close()
    med = {k: median(v) for k, v in samples.items()}
    table = Table("training", f"2. Training step (forward + backward + update, batch {cfg.train_batch}, median of "
                              f"{cfg.reps})",
                  ["contender", "ms per step", "ratio to the Session (per-repetition range)"])
    for c in contenders:
        r = med[c.key] / med["session_train"]
        low, high = paired_ratio(samples[c.key], samples["session_train"])[1:]
        shown = ratio(r) if c.key == "session_train" else f"{ratio(r)} ({low:.2f}-{high:.2f})"
        table.rows.append(Row(c.key, [c.label, ms(med[c.key]), shown],
                              {"seconds": med[c.key], "ratio_to_session": r, "samples": samples[c.key]}))
    table.notes.append("loss = sum(output * W) + the module's regularization losses; plain SGD "
                       f"(ResourceApplyGradientDescent, learning rate {cont.LEARNING_RATE:g}) on the trainable "
                       "variables; batch-norm moving statistics updated in both (UPDATE_OPS / training=True)")
    if not all(math.isfinite(v) for v in losses.values()):
        table.notes.append(f"the loss became non-finite during the run ({losses}): timings may not be typical")
    return table, []


# -- 3. conversion ---------------------------------------------------------------------------------------------


# Where issue 14 started (RESULTS.md of 2026-11-25, before the work on conversion speed): TF2 -> TF1 took 55.1 s
# on this module, 4.55x the naive TF1 -> TF2 recipe measured in the same run (12.1 s). Its goal is half of that; the
# ratio to the naive recipe of the same run is what is judged, as absolute times move with the machine's load.
TF2_TF1_BEFORE = (55.1, 12.1)


def _phase_summary(phases: dict) -> str:
    """'read 0.8 s, trace 1.7 s, ...': a conversion's exclusive time per phase (child.instrument)."""
    return ", ".join(f"{k} {v:.1f} s" for k, v in phases.items() if round(v, 1) or k != "other")


def conversion(cfg: Config) -> tuple:
    labels = {"naive": "naive TF1→TF2: load_v2 per variant + tf.saved_model.save",
              "tf1_tf2_fast": "bridge convert --no-verify TF1→TF2",
              "tf1_tf2": "bridge convert TF1→TF2 (verified)",
              "tf2_tf1": "bridge convert TF2→TF1 (verified; source: the converted model)"}
    table = Table("conversion", f"3. Conversion (each in a process of its own; median of {cfg.conversion_reps})",
                  ["conversion", "total", "convert", "verify", "CPU (convert / total)", "peak RSS (convert / total)",
                   "output", "output / source", "total vs naive (per-repetition range)"])
    runs = {task: [] for task in labels}
    failed = {}
    naive_dst = os.path.join(cfg.work, "naive_tf2")
    fast_dst = os.path.join(cfg.work, "fast_tf2")
    back_dst = os.path.join(cfg.work, "roundtrip_tf1")
    for rep in range(cfg.conversion_reps):
        for task in _rotate(["naive", "tf1_tf2_fast", "tf1_tf2"], rep) + ["tf2_tf1"]:
            if task in failed:
                continue
            cfg.log(f"conversion {rep + 1}/{cfg.conversion_reps}: {task}")
            try:
                if task == "naive":
                    shutil.rmtree(naive_dst, ignore_errors=True)
                    result = run_child(cfg, "naive", cfg.module, naive_dst)
                    shutil.rmtree(naive_dst, ignore_errors=True)
                elif task == "tf1_tf2_fast":
                    shutil.rmtree(fast_dst, ignore_errors=True)
                    result = run_child(cfg, "convert", cfg.module, fast_dst, "--no-verify")
                    shutil.rmtree(fast_dst, ignore_errors=True)
                elif task == "tf1_tf2":
                    shutil.rmtree(cfg.converted, ignore_errors=True)
                    result = run_child(cfg, "convert", cfg.module, cfg.converted)
                else:
                    if not os.path.isdir(cfg.converted):
                        raise RuntimeError("no converted model to convert back")
                    shutil.rmtree(back_dst, ignore_errors=True)
                    result = run_child(cfg, "convert", cfg.converted, back_dst)
                    shutil.rmtree(back_dst, ignore_errors=True)
            except RuntimeError as e:
                failed[task] = failure(e)
                cfg.log(f"conversion {task} failed: {failed[task]}")
                continue
            result["rep"] = rep
            runs[task].append(result)

    def med(task: str, field: str) -> float:
        return median([r[field] for r in runs[task]])

    def versus_naive(task: str) -> tuple:
        """(median, lowest, highest) ratio of the task's total time to the naive recipe's in the same repetition."""
        naive_by_rep = {r["rep"]: r["seconds"] for r in runs["naive"]}
        return paired_ratio([r["seconds"] for r in runs[task] if r["rep"] in naive_by_rep],
                            [naive_by_rep[r["rep"]] for r in runs[task] if r["rep"] in naive_by_rep])

    data = {}
    for task, label in labels.items():
        if task in failed or not runs[task]:
            table.rows.append(_failed_row(task, label, table.columns, failed.get(task, "not run")))
            table.errors.append(f"{task}: {failed.get(task, 'not run')}")
            continue
        d = data[task] = {f: med(task, f) for f in (
            "seconds", "convert_seconds", "verify_seconds", "cpu_seconds", "convert_cpu_seconds", "peak_rss",
            "peak_rss_before_verify", "output_bytes", "source_bytes", "wall_seconds")}
        d.update(size_ratio=d["output_bytes"] / d["source_bytes"], runs=runs[task])
        if "naive" in runs and runs["naive"]:
            d["ratio_to_naive"] = versus_naive(task)
        unverified = task in ("naive", "tf1_tf2_fast")
        verify = "-" if unverified else secs(d["verify_seconds"])
        cpu = secs(d["cpu_seconds"]) if unverified else \
            f"{secs(d['convert_cpu_seconds'])} / {secs(d['cpu_seconds'])}"
        peak = mib(d["peak_rss"]) if unverified else f"{mib(d['peak_rss_before_verify'])} / {mib(d['peak_rss'])}"
        r = d.get("ratio_to_naive")
        versus = "-" if r is None else f"{ratio(r[0])} ({r[1]:.2f}-{r[2]:.2f})"
        table.rows.append(Row(task, [label, secs(d["seconds"]), secs(d["convert_seconds"]), verify, cpu, peak,
                                     f"{d['output_bytes'] / 1e6:.1f} MB", ratio(d["size_ratio"]), versus], d))
    for task in ("tf1_tf2_fast", "tf1_tf2", "tf2_tf1"):
        if task in data:
            phases = {k: median([r["phases"].get(k, 0.0) for r in runs[task]]) for k in runs[task][-1]["phases"]}
            data[task]["phases"] = phases
            note = f"{labels[task]} phases (median seconds, exclusive): {_phase_summary(phases)}"
            sides = {k: median([r.get("side_by_side", {}).get(k, 0.0) for r in runs[task]])
                     for k in runs[task][-1].get("side_by_side", {})}
            if sides:
                note += f"; while both models run side by side, each one's own time: {_phase_summary(sides)}"
            memory = {k: median([r.get("phase_memory", {}).get(k, 0.0) for r in runs[task]])
                      for k in runs[task][-1].get("phase_memory", {})}
            if memory:
                data[task]["phase_memory"] = memory
                note += "; peak RSS growth by phase: " + ", ".join(f"{k} +{v:.0f} MiB" for k, v in memory.items()
                                                                  if round(v))
            table.notes.append(note)
    if "naive" in data:
        table.notes.append(f"times are measured inside the process after `import tensorflow` (a process also spends "
                           f"~{data['naive']['wall_seconds'] - data['naive']['seconds']:.0f} s starting and "
                           "importing); 'convert' excludes the parity verification that `bridge convert` runs before "
                           "the output appears; the naive recipe verifies nothing; the ratio to the naive recipe "
                           "pairs runs of the same repetition")
    memory_targets = _memory(cfg, data, table)
    fast, conv, back, naive = data.get("tf1_tf2_fast"), data.get("tf1_tf2"), data.get("tf2_tf1"), data.get("naive")
    not_measured = "not measured (a conversion failed)"

    def judged(d, limit):
        if not d or "ratio_to_naive" not in d:
            return not_measured, None
        r = d["ratio_to_naive"]
        return (f"{secs(d['seconds'])} vs {secs(naive['seconds'])}: {ratio(r[0])} ({r[1]:.2f}-{r[2]:.2f})",
                round(r[0], 2) <= limit)

    before_ratio = TF2_TF1_BEFORE[0] / TF2_TF1_BEFORE[1]
    targets = [
        Target("conversion_time", "TF1→TF2 `--no-verify` ≤ 0.50x the naive recipe", *judged(fast, 0.5)),
        Target("conversion_verified", "TF1→TF2 with its verification ≤ 1.00x the naive recipe (which verifies "
                                      "nothing)", *judged(conv, 1.0)),
        Target("conversion_back_time", f"TF2→TF1 (verified) ≤ half its time before issue 14: "
                                       f"{before_ratio / 2:.2f}x the naive TF1→TF2 recipe of the same run (was "
                                       f"{TF2_TF1_BEFORE[0]:.1f} s = {before_ratio:.2f}x)",
               *judged(back, round(before_ratio / 2, 2))),
        Target("conversion_size", "TF1→TF2 output ≤ 1.02x the source size",
               f"{ratio(conv['size_ratio'])}" + (f" (naive recipe: {ratio(naive['size_ratio'])})" if naive else "")
               if conv else not_measured, round(conv["size_ratio"], 2) <= 1.02 if conv else None),
        Target("conversion_size_back", "TF2→TF1 output ≤ 1.02x the source size",
               ratio(back["size_ratio"]) if back else not_measured,
               round(back["size_ratio"], 2) <= 1.02 if back else None),
    ] + memory_targets
    return table, targets


def _memory(cfg: Config, data: dict, table: Table) -> list:
    """Peak RSS of the conversions against TensorFlow's own baseline (a process that imported it and ran one op)
    plus twice the module's weights: the issue's budget is 1.5x that."""
    try:
        base = run_child(cfg, "baseline", cfg.module)
    except RuntimeError as e:
        table.errors.append(f"baseline: {failure(e)}")
        return [Target("conversion_memory", "conversion peak RSS ≤ 1.5x (TensorFlow's baseline + 2x the weights)",
                       "not measured (the baseline failed)", None)]
    budget = base["peak_rss"] + 2 * base["weight_bytes"]
    parts, met = [], True
    for task, label in (("tf1_tf2_fast", "TF1→TF2 --no-verify"), ("tf1_tf2", "TF1→TF2 verified"),
                        ("tf2_tf1", "TF2→TF1 verified")):
        if task in data:
            r = data[task]["peak_rss"] / budget
            data[task]["peak_rss_to_budget"] = r
            parts.append(f"{label} {mib(data[task]['peak_rss'])} ({r:.2f}x)")
            met = met and round(r, 2) <= 1.5
    table.notes.append(f"memory: TensorFlow's baseline (imported, one op run) {mib(base['peak_rss'])}, the module's "
                       f"weights {base['weight_bytes'] / 2**20:.0f} MiB, so baseline + 2x weights = {mib(budget)}")
    return [Target("conversion_memory", f"conversion peak RSS ≤ 1.5x (TensorFlow's baseline + 2x the weights = "
                                        f"{mib(budget)})", ", ".join(parts) or "not measured",
                   met if parts else None)]


# -- 4. cold start ---------------------------------------------------------------------------------------------


def cold_start(cfg: Config) -> tuple:
    kinds = {"converted": ("converted model: tf.saved_model.load + first batch", cfg.converted),
             "hub_load": ("hub.load(module) + first batch", cfg.module),
             "shim": ("shim hub.Module(module), eager, + first batch", cfg.module)}
    table = Table("cold_start", f"4. Cold start: load + first batch of 1 image in a fresh process (median of "
                                f"{cfg.cold_reps})",
                  ["path", "load + first batch", "load", "first batch", "ratio to hub.load", "imports",
                   "peak RSS"])
    runs, failed = {k: [] for k in kinds}, {}
    for rep in range(cfg.cold_reps):
        for kind in _rotate(list(kinds), rep):
            if kind in failed:
                continue
            cfg.log(f"cold start {rep + 1}/{cfg.cold_reps}: {kind}")
            try:
                runs[kind].append(run_child(cfg, "cold", kind, kinds[kind][1], cfg.size_text))
            except RuntimeError as e:
                failed[kind] = failure(e)
                cfg.log(f"cold start {kind} failed: {failed[kind]}")

    def med(kind: str, field: str) -> float:
        return median([r[field] for r in runs[kind]])

    base = med("hub_load", "seconds") if "hub_load" not in failed else math.nan
    for kind, (label, _) in kinds.items():
        if kind in failed:
            table.rows.append(_failed_row(kind, label, table.columns, failed[kind]))
            table.errors.append(f"{kind}: {failed[kind]}")
            continue
        data = {f: med(kind, f) for f in ("seconds", "load_seconds", "first_batch_seconds", "import_seconds",
                                          "total_seconds", "wall_seconds", "peak_rss")}
        data["ratio_to_hub_load"] = data["seconds"] / base
        data["runs"] = runs[kind]
        table.rows.append(Row(kind, [label, secs(data["seconds"]), secs(data["load_seconds"]),
                                     secs(data["first_batch_seconds"]), ratio(data["ratio_to_hub_load"]),
                                     secs(data["import_seconds"]), mib(data["peak_rss"])], data))
    loads = [r for r in runs["converted"] if "load_phases" in r]
    if loads:
        phases = {k: median([r["load_phases"].get(k, 0.0) for r in loads]) for k in loads[-1]["load_phases"]}
        functions, losses = loads[-1]["functions"], loads[-1]["regularization_losses"]
        if functions["saver"]:
            saver = (f"{functions['saver_nodes']} of the nodes are the checkpoint saver's {functions['saver']} "
                     "functions, which TF1 loaders and TensorFlow Serving run and tf.saved_model.load imports too")
        else:
            saver = (f"the checkpoint saver that TF1 loaders and TensorFlow Serving run is "
                     f"{functions.get('graph_saver_nodes', 0)} plain nodes of the main graph, which "
                     "tf.saved_model.load skips")
        table.notes.append(
            f"the converted model's load, by phase (median): function library {phases.get('function library', 0):.2f} s "
            f"({functions['total']} functions, {functions['nodes']} nodes; {saver}; {losses} are one-loss "
            f"functions, one per regularization loss, as the Reusable SavedModel API lists them), checkpoint restore "
            f"{phases.get('checkpoint restore', 0):.2f} s, objects and their captures {phases.get('other', 0):.2f} s")
    table.notes.append("imports: interpreter start to the imports done (tensorflow; plus tensorflow_hub for hub.load, "
                       "plus this project for the shim), not part of the ratio; the ratio's range pairs the runs of "
                       "one repetition")
    converted = next((r for r in table.rows if r.key == "converted" and r.data), None)
    if converted is None or "hub_load" in failed:
        return table, [Target("cold_start", "cold start of the converted model ≤ 1.00x hub.load",
                              "not measured (a run failed)", None)]
    r = paired_ratio([x["seconds"] for x in runs["converted"]], [x["seconds"] for x in runs["hub_load"]])
    return table, [Target("cold_start", "cold start of the converted model (load + first image) ≤ 1.00x hub.load",
                          f"{secs(converted.data['seconds'])} vs {secs(base)}: {ratio(r[0])} ({r[1]:.2f}-{r[2]:.2f})",
                          round(r[0], 2) <= 1.0)]


# -- 5. the parity harness -------------------------------------------------------------------------------------


def _own_call(runner, signature: str):
    """The model behind a parity runner, called directly: what running it costs without the harness."""
    from bridge.parity.runners import ModuleRunner

    if isinstance(runner, ModuleRunner):
        return lambda x: runner.adapter.call_signature(signature, x, training=False)
    fn = getattr(runner.obj, signature)
    return lambda x: fn(x, training=False)


def harness(cfg: Config) -> tuple:
    from bridge import compare
    from bridge.parity.runners import open_runner

    signature = cont.SIGNATURE
    memory, failed = {}, {}
    for count in cfg.harness_sizes:
        cfg.log(f"harness: memory with {count} images (own process)")
        try:
            memory[count] = run_child(cfg, "harness", cfg.module, cfg.converted, str(count), "--batch-size",
                                      str(cfg.harness_batch), "--signature", signature)
        except RuntimeError as e:
            failed[count] = failure(e)
            cfg.log(f"harness with {count} images failed: {failed[count]}")
    cfg.log("harness: loading both models in process")
    ra, rb = open_runner(cfg.module), open_runner(cfg.converted)
    call_a, call_b = _own_call(ra, signature), _own_call(rb, signature)
    n, batch = cfg.harness_images, cfg.harness_batch
    images = _images(n, cfg.image_size, seed=3)
    reports = []

    def run_harness():
        reports.append(compare(ra, rb, random=n, batch_size=batch, signatures=[signature], seed=0))

    def run_own():
        for start in range(0, n, batch):
            x = images[start:start + batch]
            [v.numpy() for v in call_a(x).values()]
            [v.numpy() for v in call_b(x).values()]

    cfg.log(f"harness: {n} images, {cfg.harness_reps} interleaved repetitions")
    samples = interleaved({"harness": run_harness, "own": run_own}, cfg.harness_reps, min_seconds=0)
    med = {k: median(v) for k, v in samples.items()}
    overhead = med["harness"] / med["own"]
    low, high = paired_ratio(samples["harness"], samples["own"])[1:]
    table = Table("harness", f"5. Parity harness: `bridge.compare(module, converted, signatures=['default'])`, "
                             f"batch {batch}",
                  ["measurement", "images", "time", "images/s", "ratio to own inference", "peak RSS",
                   "peak RSS growth during the run"])
    table.rows.append(Row("own", [f"the two models' own inference (median of {cfg.harness_reps})", n,
                                  secs(med["own"]), f"{n / med['own']:.1f}", "1.00x", "-", "-"],
                          {"seconds": med["own"], "samples": samples["own"]}))
    table.rows.append(Row("compare", [f"harness comparing them, same process (median of {cfg.harness_reps})", n,
                                      secs(med["harness"]), f"{n / med['harness']:.1f}", ratio(overhead), "-", "-"],
                          {"seconds": med["harness"], "ratio_to_own": overhead, "samples": samples["harness"],
                           "passed": all(r.passed for r in reports)}))
    for count in cfg.harness_sizes:
        label = f"harness on {count} images, own process"
        if count in failed:
            table.rows.append(_failed_row(f"memory_{count}", label, table.columns, failed[count]))
            table.errors.append(f"{count} images: {failed[count]}")
            continue
        m = memory[count]
        growth = m["peak_rss"] - m["peak_rss_before"]
        table.rows.append(Row(f"memory_{count}", [label, count, secs(m["seconds"]), f"{m['images_per_second']:.1f}",
                                                  "-", mib(m["peak_rss"]), mib(growth)], dict(m, growth=growth)))
    table.notes.append("peak RSS growth: the process's peak during the measured run minus its peak after loading "
                       "both models and one warm-up batch; a harness that kept images or outputs would grow with N "
                       f"(one {cfg.size_text} image is {cfg.image_size[0] * cfg.image_size[1] * 12 / 1024:.0f} KiB)")
    small, large = min(cfg.harness_sizes), max(cfg.harness_sizes)
    measured = f"{ratio(overhead)} ({low:.2f}-{high:.2f}); "
    if failed:
        measured += "memory not measured (a run failed)"
        met = None
    else:
        peak_ratio = memory[large]["peak_rss"] / memory[small]["peak_rss"]
        measured += (f"peak RSS {mib(memory[small]['peak_rss'])} at N={small}, {mib(memory[large]['peak_rss'])} at "
                     f"N={large} ({ratio(peak_ratio)})")
        met = round(overhead, 2) <= 1.10 and peak_ratio <= FLAT
    targets = [Target("harness", f"parity harness ≤ 1.10x the models' own inference, memory flat in N (peak RSS at "
                                 f"N={large} within {FLAT - 1:.0%} of N={small})", measured, met)]
    return table, targets


# -- 6. parity on Apache Beam -------------------------------------------------------------------------------------


def beam(cfg: Config) -> tuple:
    from benchmarks.beam_throughput import measure, write_images

    n = cfg.beam_images
    folder = write_images(os.path.join(cfg.work, "beam_images"), n, cfg.image_size[0])
    runs = measure(cfg.module, cfg.converted, folder, n, cfg.harness_batch, log=cfg.log)
    base = runs["local harness"]
    table = Table("beam", f"6. Parity on Beam: `bridge parity module converted --images DIR --runner beam`, "
                          f"{n} JPEG files, batch {cfg.harness_batch}, signature default",
                  ["run", "images", "time", "images/s", "ratio to local"])
    for name, seconds in runs.items():
        table.rows.append(Row(name, [name, n, secs(seconds), f"{n / seconds:.2f}", ratio(seconds / base)],
                              {"seconds": seconds, "images_per_second": n / seconds}))
    table.notes.append("each run timed from the call to the report: both models loaded, and for Beam the pipeline "
                       "started; every Beam report equals the local one (checked)")
    return table, []


SECTIONS = {
    "conversion": conversion,
    "cold_start": cold_start,
    "harness": harness,
    "inference": inference,
    "training": training,
    "beam": beam,
}
# The order of the printed tables (the numbering of issue 8); SECTIONS is the order they run in.
TABLE_ORDER = ["inference", "training", "conversion", "cold_start", "harness", "beam"]
