#!/usr/bin/env python
"""Images per second of `bridge parity`: the local harness vs the Beam pipeline (DirectRunner, 1 and 2 workers).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/beam_throughput.py [--module DIR] [--images N] [--batch-size 8]

Compares a TF1 Hub module (default: the benchmark's ResNet V2 50, built once by `benchmarks/run.py`'s builder
with the genuine legacy library) with its TF2 conversion on the same N generated JPEG files, inference only.
Each run is timed from the call to the report (model loading and, for Beam, pipeline start-up included) and
checked to give the same report as the local run. `make bench` runs it as its section 6 (beam).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def write_images(folder: str, count: int, size: int) -> str:
    """`count` seeded random JPEG files of size x size in `folder`."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        tf.io.write_file(os.path.join(folder, f"{i:05d}.jpg"), tf.io.encode_jpeg(pixels))
    return folder


def measure(module: str, converted: str, folder: str, images: int, batch_size: int, log=print) -> dict:
    """{run name: seconds} of the local harness and the Beam pipeline with 1 and 2 workers on the same image files,
    each timed from the call to the report; every Beam report must equal the local one."""
    from bridge.parity import compare
    from bridge.parity.beam import compare_on_beam

    common = dict(images=folder, batch_size=batch_size, signatures=["default"])
    runs = {}
    log(f"beam: local harness on {images} images")
    start = time.perf_counter()
    local = compare(module, converted, **common).to_json()
    runs["local harness"] = time.perf_counter() - start
    for workers in (1, 2):
        log(f"beam: DirectRunner with {workers} worker(s)")
        start = time.perf_counter()
        report = compare_on_beam(module, converted, **common,
                                 beam_options=f"--direct_num_workers={workers}").to_json()
        runs[f"Beam DirectRunner, {workers} worker{'s' * (workers > 1)}"] = time.perf_counter() - start
        if report != local:
            raise AssertionError("the Beam report differs from the local one")
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--module", help="TF1 Hub module (default: the cached benchmark ResNet V2 50)")
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", help="also write the measurements here")
    args = p.parse_args()

    from benchmarks.run import MODULE_DIR, ensure_module
    from bridge.conversion.converter import convert
    from bridge.parity.runners import open_runner

    module = args.module or (ensure_module() and MODULE_DIR)
    work = tempfile.mkdtemp(prefix="beam-throughput-")
    converted = convert(module, os.path.join(work, "tf2"), verify=False, progress=None).destination
    size = open_runner(module).expected_image_size or (224, 224)
    folder = write_images(os.path.join(work, "images"), args.images, size[0])
    runs = measure(module, converted, folder, args.images, args.batch_size)
    rows = [{"run": name, "images": args.images, "seconds": round(t, 1), "images_per_s": round(args.images / t, 2)}
            for name, t in runs.items()]
    for row in rows:
        print(f"{row['run']:32s} {row['images']:5d} images {row['seconds']:7.1f} s {row['images_per_s']:7.2f} images/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"module": module, "cpus": os.cpu_count(), "batch_size": args.batch_size, "runs": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
