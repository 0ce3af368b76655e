"""Parity on Apache Beam: the local comparison as a pipeline, for evaluation sets that outgrow one machine.

    report = compare_on_beam("old_module/", "new_savedmodel/", images="val/", beam_options="--direct_num_workers=2")
    report.passed, print(report.table())      # the same Report as bridge.parity.compare, with the same values

The pipeline: the batches the local harness would make (listed on the launching machine: the sorted file list
defines them) -> Reshuffle -> decoded in parallel (`bridge.parity.images`, bit for bit the local decoding) ->
RunInference with A -> RunInference with B (`RunnerModelHandler`: either format, through
`bridge.parity.runners.open_runner`) -> per output, the `ErrorStats` of each batch -> combined across workers
(`StatsCombineFn`, over `ErrorStats.merge`) -> one file the launching machine reads back into a `Report`.

Equal to the local report: every batch holds the same images as locally, so each model computes the same
outputs for it, and merged statistics equal streamed ones (exact sums, exact maxima, histograms added bin by bin,
per-element errors concatenated within `bridge.parity.stats.EXACT_LIMIT`: see that module for the quantiles'
bound beyond it). Compared: inference outputs (training mode, gradients and batch-norm updates follow the
sequence of batches, so they stay with the local run).

Beam's own TensorFlow model handler loads through tf.keras and hub.resolve, which refuses plain SavedModel
directories under Keras 3 (apache/beam#30616); hence a handler of this project. Model and image paths must be
readable by every worker (on one machine, any path; on a cluster, a shared filesystem).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import os
import pickle
import shlex
import tempfile
import uuid
from typing import Callable, Sequence

import numpy as np

from bridge.parity.images import (DEFAULT_VAL_RANGE, ArrayFile, Batch, ImageFile, InMemoryArray, InputSet,
                                  collect_inputs, load_image, read_npz_member)
from bridge.parity.results import INFERENCE, Report
from bridge.parity.stats import ErrorStats
from bridge.parity.tolerance import DEFAULT_ATOL_SCALE, DEFAULT_RTOL, SEMANTICS, Tolerances, check_overrides
from legacy.errors import BridgeError, InvalidInputError, MissingExtraError

# The project installs from its checkout (README: pip install -c constraints/main.txt .), so the extra does too.
INSTALL = "pip install -c constraints/main.txt '.[beam]' (in the tf-hub-bridge checkout)"

# DirectRunner on this machine: two workers as threads of one process. TensorFlow releases the GIL while it
# computes, so threads run in parallel, and each model is loaded once per process (RunInference shares it).
DEFAULT_OPTIONS = ("--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_threading")
RESULTS_FILE = "bridge-parity-results.pkl"


class _BenignBeamWarnings(logging.Filter):
    """Drops two warnings Beam logs on the root logger that say nothing about the run: optional Google Cloud
    client libraries (needed only on Dataflow, which installs them) and a memory probe unavailable here."""

    PREFIXES = ("apitools not found", "Resource module is not available")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


if not any(isinstance(f, _BenignBeamWarnings) for f in logging.getLogger().filters):
    logging.getLogger().addFilter(_BenignBeamWarnings())

try:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError:  # the optional extra: importing this module says how to install it, in one line
    raise MissingExtraError(f"--runner beam needs Apache Beam, which is not installed; install it with: {INSTALL}"
                            ) from None


# -- batches: planned on the launching machine, read on the workers ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """One batch as the local harness makes it: `pieces` (source, offset, count) in order, and the images' names."""

    index: int
    start: int
    pieces: tuple
    names: tuple


def plan_batches(inputs: InputSet) -> list:
    """The batches of `inputs.batches()`, as plans a worker can read on its own (nothing is decoded here).

    In-memory arrays travel in their plans, cut to the batch; files are read by the workers.
    """
    plans, pieces, names, start = [], [], [], 0
    size = inputs.batch_size
    for source in inputs._sources:
        offset = 0
        while offset < source.count:
            take = min(size - len(names), source.count - offset)
            if isinstance(source, InMemoryArray):
                pieces.append((InMemoryArray(source.array[offset:offset + take], source.label), 0, take))
            else:
                pieces.append((source, offset, take))
            names.extend(_names(source, offset, take))
            offset += take
            if len(names) == size:
                plans.append(BatchPlan(len(plans), start, tuple(pieces), tuple(names)))
                start += size
                pieces, names = [], []
    if names:
        plans.append(BatchPlan(len(plans), start, tuple(pieces), tuple(names)))
    return plans


def _names(source, offset: int, count: int) -> list:
    """The names `InputSet.batches()` gives these images."""
    if isinstance(source, ImageFile):
        return [source.path]
    if isinstance(source, ArrayFile):
        label = source.path if source.key is None else f"{source.path}:{source.key}"
    elif isinstance(source, InMemoryArray):
        label = source.label
    else:
        label = f"random(seed={source.seed})"
    return [f"{label}[{i}]" for i in range(offset, offset + count)]


def read_batch(plan: BatchPlan, image_size: tuple | None) -> Batch:
    """The images of one planned batch, as `InputSet.batches()` yields them (the same decoding, the same values)."""
    chunks = [_read_piece(source, offset, count, image_size) for source, offset, count in plan.pieces]
    return Batch(np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32), list(plan.names), plan.start)


def _read_piece(source, offset: int, count: int, image_size) -> np.ndarray:
    if isinstance(source, ImageFile):
        return load_image(source.path, image_size)[None]
    if isinstance(source, InMemoryArray):
        return source.array
    if isinstance(source, ArrayFile):
        if source.key is None:
            array = np.load(source.path, mmap_mode="r", allow_pickle=False)
            array = array[None] if array.ndim == 3 else array
            return np.asarray(array[offset:offset + count], dtype=np.float32)
        rows, position = [], 0
        for chunk in read_npz_member(source.path, source.key, max(count, 1)):  # streamed: skip to the offset
            end = position + len(chunk)
            if end > offset:
                rows.append(chunk[max(0, offset - position):offset + count - position])
            position = end
            if position >= offset + count:
                break
        return np.concatenate(rows)
    # Seeded uniform images: the stream numpy.random.default_rng(seed) draws, one 64-bit value per float64 sample,
    # advanced to this piece's first image, so any worker draws the values the local run draws there.
    height, width = image_size
    bits = np.random.PCG64(source.seed)
    bits.advance(offset * height * width * 3)
    low, high = source.val_range
    return np.random.Generator(bits).uniform(low, high, size=(count, height, width, 3)).astype(np.float32)


# -- the model handler -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outputs:
    """One model's outputs on one batch: signature -> output key -> array, and which outputs are logits."""

    values: dict
    logits: frozenset


@dataclasses.dataclass
class _WithA:
    """A batch and model A's outputs on it, on their way to model B."""

    batch: Batch
    a: Outputs

    @property
    def images(self) -> np.ndarray:
        return self.batch.images


class RunnerModelHandler(ModelHandler):
    """A RunInference model handler for any model parity runs (TF1 Hub module or TF2 SavedModel).

    Each element is one whole batch (anything with `.images`): RunInference's own batching is set to one element,
    so batches stay the local harness's. The prediction is an `Outputs` of every signature in `signatures`.
    """

    def __init__(self, model: str, signatures: Sequence[str], allow_unsafe_ops: bool = False):
        super().__init__(min_batch_size=1, max_batch_size=1)
        self.model = os.fspath(model)
        self.signatures = list(signatures)
        self.allow_unsafe_ops = allow_unsafe_ops

    def load_model(self):
        """The model as a `Runner`; an archive stays extracted while the worker lives."""
        from bridge.formats import open_model
        from bridge.parity.runners import open_runner

        stack = contextlib.ExitStack()
        opened = stack.enter_context(open_model(self.model, check_safety=True,
                                                allow_unsafe_ops=self.allow_unsafe_ops))
        runner = open_runner(opened.path, label=opened.source, allow_unsafe_ops=self.allow_unsafe_ops)
        runner._beam_resources = stack
        return runner

    def run_inference(self, batch, model, inference_args=None):
        for example in batch:
            values, logits = {}, set()
            for sig in self.signatures:
                out = model.run(sig, example.images, training=False)
                values[sig] = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in out.items()}
                logits.update((sig, key) for key in values[sig] if model.is_logits(sig, key))
            yield PredictionResult(example, Outputs(values, frozenset(logits)))

    def get_num_bytes(self, batch) -> int:
        return sum(example.images.nbytes for example in batch)

    def get_metrics_namespace(self) -> str:
        return "BridgeParity"


# -- per-batch statistics and their combination ------------------------------------------------------------------


@dataclasses.dataclass
class Part:
    """One output's share of the run: its statistics over some batches, or why it is missing."""

    stats: ErrorStats | None
    missing: str | None = None
    missing_at: int = 0  # the first batch where it was missing (the earliest message wins, as locally)


def batch_statistics(a: Outputs, b: Outputs, batch: Batch, signatures: Sequence[str], tolerances: Tolerances,
                     logits: Sequence[str] = ()):
    """((signature, key), Part) for every output of one batch: what the local harness feeds for that batch."""
    from bridge.parity.comparison import ordered_keys

    for sig in signatures:
        va, vb = a.values[sig], b.values[sig]
        for key in ordered_keys(set(va) | set(vb)):
            if key not in va or key not in vb:
                yield (sig, key), Part(None, f"output only in {'A' if key in va else 'B'}", batch.start)
                continue
            name = f"{sig}/{key}"
            is_logits = (sig, key) in a.logits or (sig, key) in b.logits or bool({name, key} & set(logits))
            _, rtol, _, _ = tolerances.resolve(name, key, INFERENCE)
            stats = ErrorStats(rtol, logits=is_logits)
            stats.update(va[key], vb[key], start=batch.start, names=batch.names)
            yield (sig, key), Part(stats)


def merge_parts(first: Part | None, second: Part) -> Part:
    """Both shares in one (a new Part; neither input changes)."""
    parts = [p for p in (first, second) if p is not None]
    with_stats = [p.stats for p in parts if p.stats is not None]
    stats = None
    if with_stats:
        s0 = with_stats[0]
        stats = ErrorStats(s0.rtol, logits=s0.logits, exact_limit=s0.exact_limit)
        for s in with_stats:
            stats.merge(s)
    missing = [p for p in parts if p.missing]
    earliest = min(missing, key=lambda p: p.missing_at) if missing else None
    return Part(stats, earliest.missing if earliest else None, earliest.missing_at if earliest else 0)


class StatsCombineFn(beam.CombineFn):
    """Merges the `Part`s of one output across batches and workers (`ErrorStats.merge`)."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, part):
        return merge_parts(accumulator, part)

    def merge_accumulators(self, accumulators):
        merged = None
        for accumulator in accumulators:
            if accumulator is not None:
                merged = merge_parts(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


# -- the pipeline ------------------------------------------------------------------------------------------------


def pipeline_options(beam_options=None):
    """Beam PipelineOptions from a string or list of flags; DirectRunner with 2 workers unless a runner is given."""
    flags = shlex.split(beam_options) if isinstance(beam_options, str) else list(beam_options or [])
    given = {flag.split("=", 1)[0].lstrip("-") for flag in flags if flag.startswith("--")}
    defaults = [d for d in DEFAULT_OPTIONS if d.split("=", 1)[0].lstrip("-") not in given]
    runner = PipelineOptions(flags).get_all_options().get("runner") or "DirectRunner"
    if runner != "DirectRunner":  # another runner: its own defaults, not DirectRunner's
        defaults = [d for d in defaults if not d.startswith("--direct_")]
    options = PipelineOptions(defaults + flags)
    known = options.get_all_options()
    bad = [f for f in flags if f.startswith("--") and f.split("=", 1)[0][2:] not in known]
    if bad:
        raise InvalidInputError(f"--beam-options: unknown Beam option {bad[0]!r}; see the Beam pipeline options "
                                "of your runner (e.g. --runner=DataflowRunner --project=... --region=...)")
    return options


def expand_globs(images) -> list | None:
    """Image paths with wildcards (`photos/*.jpg`, `val/**/*.JPEG`) expanded in sorted order; others as given."""
    if images is None:
        return None
    items = [images] if isinstance(images, (str, os.PathLike, np.ndarray)) else list(images)
    expanded = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and not os.path.exists(item) and glob.has_magic(os.fspath(item)):
            found = sorted(glob.glob(os.fspath(item), recursive=True))
            if not found:
                raise InvalidInputError(f"{os.fspath(item)}: the pattern matches no file; check the path")
            expanded.extend(found)
        else:
            expanded.append(item)
    return expanded


def compare_on_beam(a, b, images=None, *, random: int | None = None, seed: int = 0,
                    val_range: Sequence[float] = DEFAULT_VAL_RANGE, batch_size: int | None = None,
                    image_size: Sequence[int] | None = None, signatures: Sequence[str] | None = None,
                    atol=None, rtol=None, logits: Sequence[str] = (), beam_options=None,
                    allow_unsafe_ops: bool = False, progress: Callable[[str], None] | None = None) -> Report:
    """`bridge.parity.compare` (inference outputs) as an Apache Beam pipeline; the same arguments and Report.

    `a`, `b`: model paths (directories, .tar.gz archives, cached TF Hub handles) readable by every worker.
    `images`: as for `compare`, plus glob patterns. `beam_options`: Beam pipeline flags, a string or a list
    (default `DEFAULT_OPTIONS`: DirectRunner, 2 workers as threads).
    """
    from bridge.parity.comparison import (DEFAULT_RANDOM, check_logits, fill_fixed_batches, input_kind,
                                          open_model_runner, resolve_batch_size, resolve_image_size,
                                          select_signatures)

    tolerances = Tolerances.parse(atol, rtol)
    for model in (a, b):
        if not isinstance(model, (str, os.PathLike)):
            raise InvalidInputError("--runner beam takes model paths (workers load the models themselves), not "
                                    f"objects in memory: got {type(model).__name__}")
    options = pipeline_options(beam_options)
    images = expand_globs(images)
    progress = progress or (lambda message: None)
    with contextlib.ExitStack() as stack:
        ra, rb = (open_model_runner(model, stack, allow_unsafe_ops) for model in (a, b))
        chosen = select_signatures(ra, rb, signatures)
        kind = input_kind(ra, rb)
        if kind != "images":
            what = "sentences" if kind == "text" else "named tensors"
            raise InvalidInputError(f"--runner beam compares image models, and these take {what}; compare them "
                                    "with the local runner (drop --runner beam)")
        size = resolve_image_size(ra, rb, image_size)
        if images is None and random is None:
            random = DEFAULT_RANDOM
        inputs = collect_inputs(images, random=random, seed=seed, val_range=val_range, image_size=size,
                                batch_size=resolve_batch_size(ra, rb, batch_size))
        filled = fill_fixed_batches(ra, rb, inputs, seed, val_range)
        plans = plan_batches(inputs)
        # One batch here first: bad options, an unusable image size or a model that fails stop before the
        # pipeline is launched, with the local harness's messages.
        first = read_batch(plans[0], size)
        outputs = {side: {sig: r.run(sig, first.images, training=False) for sig in chosen}
                   for side, r in (("A", ra), ("B", rb))}
        names = {n for sig in chosen for side in outputs.values() for key in side[sig] for n in (f"{sig}/{key}", key)}
        names.update(("inference", "training", "gradients", "updates"))
        check_overrides(tolerances, names)
        check_logits(logits, names)
        a_desc, b_desc = ra.describe(), rb.describe()
        only_in = {"A": [s for s in ra.signature_names if s not in rb.signature_names],
                   "B": [s for s in rb.signature_names if s not in ra.signature_names]}
        labels = (ra.label, rb.label)
        random_ops = {side: None if getattr(r, "random", None) is None else r.random.to_json()
                      for side, r in (("A", ra), ("B", rb))}
        paths = (os.fspath(a), os.fspath(b))

    progress(f"running {len(inputs)} images in {len(plans)} batches on Beam "
             f"({options.get_all_options().get('runner') or 'DirectRunner'})")
    handler_a = RunnerModelHandler(paths[0], chosen, allow_unsafe_ops)
    handler_b = RunnerModelHandler(paths[1], chosen, allow_unsafe_ops)
    user_logits = tuple(logits)
    combined = dict(run_gathered(options, RESULTS_FILE, lambda pipeline: (
        pipeline
        | "Batches" >> beam.Create(plans)
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.Map(read_batch, size)
        | "RunA" >> RunInference(handler_a)
        | "CarryA" >> beam.Map(lambda r: _WithA(r.example, r.inference))
        | "RunB" >> RunInference(handler_b)
        | "Statistics" >> beam.FlatMap(lambda r: batch_statistics(
            r.example.a, r.inference, r.example.batch, chosen, tolerances, user_logits))
        | "Combine" >> beam.CombinePerKey(StatsCombineFn()))))

    report = _report(combined, chosen, tolerances, inputs, images, a_desc, b_desc, seed, only_in, labels, random_ops)
    if filled:
        report.notes.insert(0, filled)
    progress(f"{len(inputs)} images compared")
    return report


def _report(combined: dict, chosen: list, tolerances: Tolerances, inputs: InputSet, images, a_desc: dict,
            b_desc: dict, seed: int, only_in: dict, labels: tuple, random_ops: dict) -> Report:
    """The local harness's Report from the combined statistics (same entries, order, settings and inputs)."""
    from bridge.parity.comparison import OutputEntry, describe_sources, missing_outputs_notes, ordered_keys

    results = []
    for sig in chosen:
        keys = ordered_keys(key for s, key in combined if s == sig)
        for key in keys:
            part = combined[(sig, key)]
            stats = part.stats
            entry = OutputEntry(f"{sig}/{key}", sig, key, INFERENCE, tolerances, bool(stats and stats.logits))
            if stats is not None:
                entry.stats = stats
            entry.missing = part.missing
            results.append(entry.result())
    settings = {
        "signatures": chosen,
        "modes": [INFERENCE],
        "gradient_training_mode": None,
        "gradient_loss": None,
        "seed": seed,
        "signatures_only_in": only_in,
        "random_ops": random_ops,
        "tolerance": {"semantics": SEMANTICS, "default_atol_scale": DEFAULT_ATOL_SCALE,
                      "default_rtol": DEFAULT_RTOL, "overrides": tolerances.to_json()},
    }
    describe = inputs.describe()
    describe["sources"] = describe_sources(images)
    notes = [f"signature{'s' if len(names) > 1 else ''} only in {side} ({label}), not compared: "
             f"{', '.join(names)}" for (side, names), label in zip(only_in.items(), labels) if names]
    notes += missing_outputs_notes(results)
    return Report(a=a_desc, b=b_desc, inputs=describe, results=results, settings=settings, notes=notes)


def run_gathered(options, results_name: str, build: Callable) -> list:
    """Run the pipeline whose steps `build(pipeline)` adds, and return every element of the PCollection it returns,
    gathered on the launching machine through a file `results_name` under --temp_location (any filesystem Beam
    writes, e.g. gs://), else a local temporary directory, removed afterwards. A worker's BridgeError comes back as
    itself (one line), any other failure as a BridgeError naming where to look."""
    temp = options.get_all_options().get("temp_location")
    local_dir = None if temp else tempfile.mkdtemp(prefix="bridge-beam-")
    results_path = _join(temp or local_dir, f"{uuid.uuid4().hex}-{results_name}")
    try:
        with beam.Pipeline(options=options) as pipeline:
            _ = (build(pipeline)
                 | "Gather" >> beam.combiners.ToList()
                 | "Write" >> beam.Map(_write_results, results_path))
        return _read_results(results_path)
    except BridgeError:
        raise
    except Exception as e:  # a worker's error comes back wrapped by the runner: one line again
        raise _unwrap(e) from None
    finally:
        _remove(results_path, local_dir)


def _join(base: str, name: str) -> str:
    return FileSystems.join(base, name)


def _write_results(items: list, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))


def _read_results(path: str) -> list:
    with FileSystems.open(path) as f:
        return pickle.loads(f.read())


def _remove(path: str, local_dir: str | None) -> None:
    with contextlib.suppress(Exception):
        FileSystems.delete([path])
    if local_dir:
        with contextlib.suppress(OSError):
            os.rmdir(local_dir)


def _unwrap(error: Exception) -> Exception:
    """The project's error inside a runner's wrapped exception (by type, or by name in its text), else a
    BridgeError saying the pipeline failed and where to look."""
    import re

    from legacy import errors

    seen = error
    while seen is not None:
        if isinstance(seen, BridgeError):
            return type(seen)(_strip_step(str(seen)))
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    names = "|".join(n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, BridgeError))
    found = re.findall(rf"\b({names}): (.+)", text)
    if found:
        name, message = found[-1]
        return getattr(errors, name)(_strip_step(message))
    first = " ".join(text.split())[:300]
    return BridgeError(f"the Beam pipeline failed ({type(error).__name__}: {first}); rerun with BRIDGE_DEBUG=1 for "
                       "the traceback")


def _strip_step(message: str) -> str:
    """The message without the runner's " [while running '...']" suffix."""
    import re

    return re.sub(r"\s*\[while running '[^']*'\]\s*$", "", message.strip().splitlines()[0] if message.strip() else "")
