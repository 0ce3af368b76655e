#!/usr/bin/env python
"""`make bench`: what the bridge costs against the alternatives, on a ResNet V2 50 TF1 Hub module, in one run.

    .venv/bin/python benchmarks/run.py                 # full run (~11 min on 2 cores); writes benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run.py --quick         # smoke run: fewer repetitions and sizes, writes nothing
    .venv/bin/python benchmarks/run.py --module testdata/modules/convnet_bn --quick --output /tmp/r.md

The module (tf-slim ResNet V2 50, random weights, variants set() and {"train"}, 224x224) is built once by the
genuine legacy library in .venv-legacy (benchmarks/build_module.py) and cached in benchmarks/.cache/; it is rebuilt
when build_module.py changes. Then, with medians over interleaved repetitions:

1. inference per batch: the converted TF2 model, the original graph in a tf.compat.v1.Session (the baseline),
   hub.load(module).signatures["default"], and this project's hub.Module shim in eager and graph mode;
2. a training step (forward, backward, SGD update, batch-norm updates): converted model under tf.GradientTape vs the
   train variant in a Session;
3. conversion TF1→TF2 and TF2→TF1 (`bridge.convert`, verification included as by default) against the
   naive recipe (load_v2 of each variant + tf.saved_model.save): time, peak RSS, output size; one process each;
4. cold start in a fresh process: the converted model vs hub.load vs the shim, load + first batch;
5. the parity harness (`bridge.compare`): throughput against the two models' own inference, and peak RSS
   for two numbers of images (it streams, so memory must not grow with them).

Numbers depend on the machine and on whatever else runs on it: RESULTS.md records the CPU and the load averages.
Exit status 1 when a section failed (its error is in the output), else 0. Targets missed do not fail the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import report, sections  # noqa: E402
from benchmarks.report import Results, log  # noqa: E402

HERE = os.path.join(ROOT, "benchmarks")
CACHE = os.path.join(HERE, ".cache")
MODULE_DIR = os.path.join(CACHE, "resnet_v2_50")
BUILDER = os.path.join(HERE, "build_module.py")
LEGACY_PYTHON = os.path.join(ROOT, ".venv-legacy", "bin", "python")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")

# The full run (sized to finish within 15 minutes on 2 cores, module build included: 11 min measured) and the smoke
# run (a few minutes, most of it the conversions).
FULL = dict(reps=5, batch_sizes=(1, 8, 32), large_batch_reps=3, conversion_reps=2, cold_reps=3,
            harness_sizes=(100, 1000), harness_images=24, harness_reps=3, min_seconds=0.3)
QUICK = dict(reps=2, batch_sizes=(1, 8), conversion_reps=1, cold_reps=1, harness_sizes=(16, 64),
             harness_images=16, harness_reps=1, min_seconds=0.1, beam_images=8)


def builder_digest() -> str:
    with open(BUILDER, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ensure_module(progress=log) -> tuple:
    """Build the benchmark module with the genuine legacy library unless the cached one is current.

    Returns (the build's description, whether it was built now).
    """
    stamp_path = MODULE_DIR + ".json"
    digest = builder_digest()
    if os.path.isfile(stamp_path) and os.path.isdir(MODULE_DIR):
        with open(stamp_path) as f:
            stamp = json.load(f)
        if stamp.get("builder_sha256") == digest:
            return stamp, False
    if not os.path.isfile(LEGACY_PYTHON):
        raise SystemExit(f"bench: {LEGACY_PYTHON} is missing; run `make legacy-env` (or `make bench`), or pass "
                         "--module PATH to benchmark an existing TF1 Hub module")
    progress(f"building the benchmark module with the legacy library into {MODULE_DIR} (once; about a minute)")
    os.makedirs(CACHE, exist_ok=True)
    proc = subprocess.run([LEGACY_PYTHON, BUILDER, MODULE_DIR], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        raise SystemExit("bench: building the module failed:\n" + "\n".join(proc.stderr.splitlines()[-20:]))
    with open(stamp_path) as f:
        stamp = json.load(f)
    stamp["builder_sha256"] = digest
    with open(stamp_path, "w") as f:
        json.dump(stamp, f, indent=1)
    return stamp, True


def describe_module(path: str, stamp: dict | None, built_now: bool = False) -> dict:
    from legacy.format.reader import read_module

    module = read_module(path)
    variables = module.variables()
    described = {}
    if stamp:
        described["architecture"] = (f"{stamp['architecture']} ({stamp['parameters'] / 1e6:.1f}M parameters, random "
                                     f"weights, seed {stamp['seed']}), {stamp['num_classes']} classes")
        described["built by"] = (f"the genuine legacy library: tensorflow {stamp['tensorflow']}, tensorflow-hub "
                                 f"{stamp['tensorflow_hub']} (hub.create_module_spec + Module.export), in "
                                 f"{stamp['build_seconds']:.0f} s, " + ("during this run" if built_now else
                                                                        "cached from an earlier run"))
    described["module"] = (f"{os.path.relpath(path, ROOT)}: {directory_bytes(path) / 1e6:.1f} MB on disk, "
                           f"{len(variables)} variables")
    described["graph variants"] = ", ".join("{" + ", ".join(sorted(t)) + "}" for t in module.tags)
    inference = module.variant(frozenset())
    described["signatures"] = ", ".join(sorted(inference.signatures))
    size = module.expected_image_size("default")
    described["image size"] = f"{size[0]}x{size[1]}"
    return described


def directory_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, files in os.walk(path) for f in files)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: fewer repetitions, batch sizes and images; "
                                                        "writes RESULTS.md only with --output")
    p.add_argument("--module", help="benchmark this TF1 Hub module instead of the cached ResNet V2 50")
    p.add_argument("--reps", type=int, help="interleaved repetitions of the in-process measurements (full: 5)")
    p.add_argument("--sections", default=",".join(sections.SECTIONS),
                   help=f"comma-separated subset of {', '.join(sections.SECTIONS)} (default: all)")
    p.add_argument("--work", help="scratch directory for conversion outputs (default: benchmarks/.cache/work)")
    p.add_argument("--output", help="write the Markdown results here (full run default: benchmarks/RESULTS.md)")
    p.add_argument("--json", help="also write the results, raw samples included, as JSON")
    p.add_argument("--in-process", action="store_true",
                   help="run the per-process measurements in this process (smoke tests only: their memory and "
                        "cold-start numbers are then meaningless)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started, load_at_start = time.perf_counter(), report.load_average()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(sections.SECTIONS))
    if unknown:
        raise SystemExit(f"bench: unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections.SECTIONS)}")
    stamp, built_now = None, False
    module = os.path.abspath(args.module) if args.module else None
    if module is None:
        stamp, built_now = ensure_module()
        module = MODULE_DIR
    work = os.path.abspath(args.work or os.path.join(CACHE, "work"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    from legacy.format.reader import read_module

    settings = dict(QUICK if args.quick else FULL)
    if args.reps:
        settings["reps"] = args.reps
        settings["harness_reps"] = min(settings["harness_reps"], args.reps)
    size = tuple(read_module(module).expected_image_size("default"))
    cfg = sections.Config(module=module, work=work, image_size=size, in_process=args.in_process, **settings)
    results = Results(
        settings={"date": report.now(), "mode": "quick" if args.quick else "full",
                  "args": " ".join(argv if argv is not None else sys.argv[1:]), **settings,
                  "in_process": args.in_process,
                  "method": method_notes(cfg)},
        machine={}, model=describe_module(module, stamp, built_now))

    if "conversion" not in chosen:  # the other sections need a converted model
        log("converting the module (conversion section not selected: not measured)")
        sections.run_child(cfg, "convert", module, cfg.converted)
    produced = {}
    for name, fn in sections.SECTIONS.items():
        if name not in chosen:
            continue
        t0 = time.perf_counter()
        try:
            produced[name] = fn(cfg)
        except Exception as e:  # noqa: BLE001  (a broken section must not hide the others' numbers)
            results.errors.append(f"{name}: {type(e).__name__}: {e}")
            log(f"{name} FAILED:\n{traceback.format_exc()}")
        log(f"{name}: {time.perf_counter() - t0:.0f} s")
        if name == "conversion" and not os.path.isdir(cfg.converted):
            results.errors.append("no converted model: the remaining sections cannot run")
            break
    for name in sections.TABLE_ORDER:
        if name in produced:
            table, targets = produced[name]
            results.tables.append(table)
            results.errors.extend(f"{name}: {e}" for e in table.errors)
            results.targets.extend(targets)
    results.seconds = time.perf_counter() - started
    results.machine = report.machine(load_at_start)
    print(results.markdown(header=False))
    output = args.output or (None if args.quick or args.module else RESULTS_MD)
    report.write(results, output, args.json)
    if output:
        log(f"wrote {os.path.relpath(output)}")
    log(f"done in {results.seconds / 60:.1f} min")
    return 1 if results.errors else 0


def method_notes(cfg: sections.Config) -> dict:
    return {
        "timing": (f"in-process measurements take turns, repetition by repetition ({cfg.reps} repetitions, order "
                   f"rotated each time), after one warm-up call each; a sample repeats a call for at least "
                   f"{cfg.min_seconds} s; tables show medians and ratios of medians of contenders measured side by "
                   "side in one process. In parentheses: the lowest and highest ratio within one repetition, a "
                   "measure of how much the load of a shared machine moved the result"),
        "inputs": "uniform random float32 images in [0, 1), NumPy in and NumPy out for every contender",
        "processes": ("conversions, cold starts and the harness memory runs each start a fresh interpreter "
                      "(benchmarks/child.py); peak RSS is its ru_maxrss"),
    }


if __name__ == "__main__":
    sys.exit(main())
