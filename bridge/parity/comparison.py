"""Compare two models on identical image batches, output by output, streaming: `compare(a, b, images=...)`.

    report = compare("old_module/", "new_savedmodel/", images="photos/", training=True)
    report.passed, print(report.table())

Model A is the reference. The same batches go to both models; each batch's outputs are compared and dropped, so
memory stays flat in the number of images. What is compared ("modes"):
- inference: every output of every selected signature, training=False, on the models' initial weights;
- training (`training=True`): the same outputs with training=True, and after each such call the non-trainable
  variables (batch-norm moving statistics) as outputs `updates/<variable name>`. The updates accumulate over the
  batches as in a training loop that calls the first compared signature once per step (every signature's call
  starts from that state), on the side: inference and gradients always see the initial values;
- gradients (`gradients=True`): d loss / d trainable variable, matched by name (':0' stripped; a repeated name gets
  `_1`, `_2`, ... as `bridge.conversion.tf2_to_tf1` names checkpoint keys), outputs `gradients/<variable name>`, for one
  seeded loss per batch (`GRADIENT_LOSS`); run with training=True when both models have a training mode, as
  fine-tuning does.
Every model is restored to its initial variable values at the end.

Tolerances: `bridge.parity.tolerance` (an element fails only when |A-B| > atol AND |A-B| > rtol*|A|). Equal
non-finite values (both NaN, or the same infinity) are equal; any other non-finite difference fails. An output
present in only one model fails. Reported per output: the smallest atol that would have passed at its rtol
(max |a-b| over elements with |a-b| > rtol*|a|) and the smallest rtol at its atol (max |a-b|/|a| over elements
with |a-b| > atol). "identical" means every element is equal (bit-identical up to the sign of zero).
Streaming approximations (median, p99 beyond 65,536 elements per output): see `bridge.parity.stats`.
"""

from __future__ import annotations

import contextlib
import math
import os
import zlib
from typing import Callable, Sequence

import numpy as np

from bridge.parity.images import DEFAULT_BATCH_SIZE, DEFAULT_VAL_RANGE, collect_inputs
from bridge import validate
from bridge.validate import parse_image_size
from bridge.parity.results import (FAIL, GRADIENTS, INFERENCE, MISSING, PASS, TRAINING, UPDATES, OutputResult,
                                   Report)
from bridge.parity.runners import Runner, open_runner
from bridge.parity.stats import ErrorStats
from bridge.parity.tolerance import DEFAULT_ATOL_SCALE, DEFAULT_RTOL, MODES, SEMANTICS, Tolerances, check_overrides
from legacy.errors import InvalidInputError, UnknownSignatureError, spell

DEFAULT_RANDOM = 8  # random images fed when no inputs are given
GRADIENT_LOSS = ("sum over the compared signatures and their shared float outputs of reduce_sum(output * W), "
                 "W ~ N(0, 1) from numpy.random.default_rng([seed, batch index, crc32('signature/output_key')]), "
                 "the same W for both models")


# -- the streaming comparison --------------------------------------------------------------------------------------


class OutputEntry:
    """One output being compared: its identity and its streaming statistics (or why it cannot be compared)."""

    def __init__(self, name, signature, key, mode, tolerances: Tolerances, logits: bool):
        self.name, self.signature, self.key, self.mode = name, signature, key, mode
        self.atol, self.rtol, self.atol_source, self.rtol_source = tolerances.resolve(name, key, mode)
        self.stats = ErrorStats(self.rtol, logits=logits)
        self.missing: str | None = None
        self.note: str | None = None
        self.aliases: list = []

    def result(self) -> OutputResult:
        s = self.stats
        base = dict(name=self.name, signature=self.signature, key=self.key, mode=self.mode, aliases=list(self.aliases),
                    rtol=self.rtol, atol_source=self.atol_source, rtol_source=self.rtol_source)
        if self.missing:
            return OutputResult(status=MISSING, reason=self.missing, min_atol=math.inf, min_rtol=math.inf, **base)
        atol = self.atol if self.atol is not None else DEFAULT_ATOL_SCALE * s.scale
        shape = None if s.sample_shape is None else (
            [s.samples] + list(s.sample_shape) if s.batched else list(s.sample_shape))
        result = OutputResult(
            status=PASS, reason="", shape=shape, batches=s.batches, elements=s.count, atol=atol, scale=s.scale,
            identical=s.identical and not s.error, max_abs=s.max_abs, mean_abs=s.mean_abs,
            median_abs=s.quantile(0.5), p99_abs=s.quantile(0.99), max_rel=s.max_rel, mean_rel=s.mean_rel,
            median_rel=s.quantile(0.5, relative=True), p99_rel=s.quantile(0.99, relative=True), cosine=s.cosine,
            top1=s.top1_agreement, top5=s.top5_agreement, failing=s.failing(atol), min_atol=s.min_atol,
            min_rtol=s.min_rtol(atol), exact_quantiles=s.exact, worst=s.worst.to_json() if s.worst else None,
            **base)
        extra = "; ".join(s.notes + ([self.note] if self.note else []))
        if s.error:
            result.status, result.reason = FAIL, s.error
            result.min_atol = result.min_rtol = math.inf
        elif not s.passes(atol):
            where = ""
            if s.worst is not None:
                image = f"image {s.worst.image} ({s.worst.image_name}) " if s.worst.image is not None else ""
                where = f"; largest at {image}index {s.worst.index}: A={s.worst.a:.6g} B={s.worst.b:.6g}"
            exact = "" if s.exact else "up to "
            result.status = FAIL
            result.reason = (f"{exact}{result.failing} of {s.count} elements exceed atol {atol:.3g} and rtol "
                             f"{self.rtol:.3g}; max |A-B| {s.max_abs:.3g}{where}")
        elif s.count == 0:
            result.reason = self.note or "nothing to compare (empty output)"
            extra = "; ".join(s.notes)
        elif result.identical:
            result.reason = "identical"
        else:
            result.reason = f"max |A-B| {s.max_abs:.3g} within atol {atol:.3g} / rtol {self.rtol:.3g}"
        if extra:
            result.reason += f" ({extra})"
        return result


class _Session:
    """Runs both models on each batch, phase by phase, and feeds the entries."""

    def __init__(self, ra: Runner, rb: Runner, signatures: list, tolerances: Tolerances, *, training: bool,
                 gradients: bool, logits: Sequence[str], seed: int, outputs_writer=None, inputs: dict | None = None,
                 drawn: dict | None = None):
        self.runners = {"A": ra, "B": rb}
        self.fixed_inputs = inputs or {}  # signature -> {input key: value} fed besides the images
        self.drawn = drawn or {}  # signature -> {input key: TensorSpec} drawn anew for each batch (see step)
        self.inputs = dict(self.fixed_inputs)  # what the current batch feeds besides the images
        self.highs = {sig: index_bounds(ra, rb, [sig]) for sig in self.drawn}  # integer inputs indexing tables
        self.words = (ra.vocabulary() or rb.vocabulary()) if self.drawn else []  # what drawn strings are made of
        self.signatures = signatures
        self.tolerances = tolerances
        self.training = training
        self.gradients = gradients
        self.gradient_training = ra.supports_training and rb.supports_training
        self.logits = set(logits)
        self.seed = seed
        self.writer = outputs_writer
        self.entries: dict = {}
        self.shared_keys: dict = {}  # signature -> output keys both models return
        self.initial: dict = {}
        self.train_state: dict = {}
        self.notes: list = []
        self._parallel = None  # whether A and B run at the same time (see _each_side)
        # A signature computing the same tensors as an earlier one, in A by its graph and in B by running the very
        # same function, is compared once: its outputs are rows of the earlier one, named as aliases.
        self.aliases = {sig: earlier for sig, earlier in ra.output_aliases(signatures).items()
                        if rb.same_function(sig, earlier)}
        self.distinct = [sig for sig in signatures if sig not in self.aliases]
        if training or gradients:
            for side, runner in self.runners.items():
                names = [n for n in runner.variables if n not in runner.trainable_variables]
                self.initial[side] = runner.snapshot(names)
                self.train_state[side] = dict(self.initial[side])

    def _note(self, text: str) -> None:
        if text not in self.notes:  # once, however many batches
            self.notes.append(text)

    def known_names(self) -> set:
        """Every name a tolerance override may use: output names and keys seen so far, the modes, and the
        `updates/<variable>` names (known before the first batch)."""
        names = set(MODES)
        for entry in self.entries.values():
            names.update((entry.name, entry.key, *entry.aliases))
        if self.training:
            names.update(f"updates/{var}" for side in self.initial.values() for var in side)
        return names

    def _entry(self, mode: str, signature: str | None, key: str) -> OutputEntry:
        name = key if signature is None else f"{signature}/{key}"
        if (mode, name) not in self.entries:
            logits = mode in (INFERENCE, TRAINING) and (
                any(r.is_logits(signature, key) for r in self.runners.values()) or bool({name, key} & self.logits))
            entry = OutputEntry(name, signature, key, mode, self.tolerances, logits)
            entry.note = self._random_note(mode, signature, key)
            self.entries[(mode, name)] = entry
        return self.entries[(mode, name)]

    def _random_note(self, mode: str, signature: str | None, key: str) -> str | None:
        """Says that an output depends on random ops and whether both sides drew the same numbers."""
        sides = [r for r in self.runners.values() if r.random is None or r.random.ops]
        if not sides:
            return None
        if mode in (INFERENCE, TRAINING):
            known = [r.random_outputs(signature, mode == TRAINING) for r in self.runners.values()]
            exact = [k for k in known if k is not None]
            if exact and not any(key in k for k in exact):
                return None
        elif mode == UPDATES:
            return None
        unmatched = [r.label for r in self.runners.values() if r.random is None or r.random.unmatched]
        if unmatched:
            return f"depends on random ops whose draws could not be matched in {', '.join(unmatched)}"
        return "depends on random ops: both models drew the same numbers"

    def _each_side(self, work: Callable) -> dict:
        """{side: work(side, runner)} for A and B, run at the same time when the two models share no variable:
        each model's first calls (graph optimization, kernel setup) and its loading overlap the other's work.
        The results are those of running them one after the other (each model runs its own kernels on its own
        variables)."""
        if self._parallel is None:
            ids = [{id(v) for v in r.variables.values()} for r in self.runners.values()]
            self._parallel = self.runners["A"] is not self.runners["B"] and not (ids[0] & ids[1])
        if not self._parallel:
            return {side: work(side, runner) for side, runner in self.runners.items()}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(self.runners), thread_name_prefix="parity") as pool:
            futures = {side: pool.submit(work, side, runner) for side, runner in self.runners.items()}
            return {side: future.result() for side, future in futures.items()}

    def step(self, batch, index: int) -> None:
        if self.drawn:
            from bridge.parity.tensor_inputs import random_tensors

            self.inputs = {sig: dict(self.fixed_inputs.get(sig, {})) for sig in self.signatures}
            for sig, specs in self.drawn.items():  # the same values for both models, seeded by batch and signature
                self.inputs[sig].update(random_tensors(specs, len(batch.names), self.seed,
                                                       salt=(index, zlib.crc32(sig.encode())),
                                                       highs=self.highs.get(sig), words=self.words))
        outputs = self._each_side(lambda side, r: {
            sig: _numpy(out) for sig, out in r.run_many(self.distinct, batch.images, inputs=self.inputs).items()})
        self._feed(INFERENCE, outputs, batch, index)
        if self.training:
            results = self._each_side(lambda side, runner: self._train(side, runner, batch))
            trained = {side: result[0] for side, result in results.items()}
            states = {side: result[1] for side, result in results.items()}
            self._feed(TRAINING, trained, batch, index)
            self._feed_updates(states, index)
        if self.gradients:
            self._gradients(batch, index, outputs)

    def _train(self, side: str, runner: Runner, batch) -> tuple:
        """({signature: training-mode outputs}, {signature: non-trainable state after its call}) of one model, each
        signature's call starting from the state the previous batch left; the variables end as they started."""
        trained, states = {}, {}
        # One call, its updates applied once: each signature's state. Not with values for extra inputs: one call
        # feeds them to the update ops of every signature (a TF1 graph shares the placeholder), where a call of a
        # signature that does not take them keeps the default.
        if runner.computes_together and not any(self.inputs.values()):
            runner.restore(self.train_state[side])
            trained = {sig: _numpy(out) for sig, out in
                       runner.run_many(self.distinct, batch.images, training=True, inputs=self.inputs).items()}
            state = runner.snapshot(list(self.initial[side]))
            states = {sig: state for sig in self.distinct}
        else:
            for sig in self.distinct:
                runner.restore(self.train_state[side])
                trained[sig] = _numpy(runner.run(sig, batch.images, training=True, inputs=self.inputs.get(sig)))
                states[sig] = runner.snapshot(list(self.initial[side]))
        self.train_state[side] = states[self.distinct[0]]
        runner.restore(self.initial[side])
        return trained, states

    def _feed(self, mode: str, outputs: dict, batch, index: int) -> None:
        for sig in self.distinct:
            a, b = outputs["A"][sig], outputs["B"][sig]
            if sig not in self.shared_keys:
                self.shared_keys[sig] = ordered_keys([k for k in a if k in b])
            for key in ordered_keys(set(a) | set(b)):
                entry = self._entry(mode, sig, key)
                if not entry.aliases:
                    entry.aliases = [f"{alias}/{key}" for alias, earlier in self.aliases.items() if earlier == sig]
                if key not in a or key not in b:
                    entry.missing = f"output only in {'A' if key in a else 'B'}"
                    continue
                entry.stats.update(a[key], b[key], start=batch.start, names=batch.names)
                self._write(f"{mode}/{entry.name}", index, a[key], b[key])

    def _feed_updates(self, states: dict, index: int) -> None:
        """The non-trainable variables after each training call, compared by name."""
        for sig in self.distinct:
            a, b = states["A"][sig], states["B"][sig]
            for var in _union(list(a), list(b)):
                entry = self._entry(UPDATES, None, f"updates/{var}")
                if var not in a or var not in b:
                    entry.missing = f"non-trainable variable only in {'A' if var in a else 'B'}"
                    continue
                entry.stats.update(a[var], b[var])
                self._write(f"updates/{sig}/{var}", index, a[var], b[var])

    def _gradients(self, batch, index: int, outputs: dict) -> None:
        """Gradients of one seeded loss over every compared signature's shared float outputs (GRADIENT_LOSS)."""
        weights = {}
        for sig in self.signatures:
            for key in self.shared_keys.get(sig, []):
                out = outputs["A"][sig][key]
                if np.issubdtype(out.dtype, np.floating) and out.shape == outputs["B"][sig][key].shape:
                    rng = np.random.default_rng([self.seed, index, zlib.crc32(f"{sig}/{key}".encode())])
                    weights[(sig, key)] = rng.standard_normal(out.shape).astype(np.float32)
        if not weights:
            self._note("no float output of the same shape in both models, so no gradients were compared")
            return
        grads = self._each_side(lambda side, runner: self._side_gradients(side, batch.images, weights))
        for var in _union(list(grads["A"]), list(grads["B"])):
            entry = self._entry(GRADIENTS, None, f"gradients/{var}")
            if var not in grads["A"] or var not in grads["B"]:
                entry.missing = f"trainable variable only in {'A' if var in grads['A'] else 'B'}"
                continue
            ga, gb = grads["A"][var], grads["B"][var]
            if ga is None and gb is None:
                entry.note = "no gradient in either model (the loss does not reach this variable)"
                continue
            if ga is None or gb is None:
                entry.stats.error = (f"only {'B' if ga is None else 'A'} has a gradient for this variable (the "
                                     "other model's outputs do not depend on it, or read it without a gradient)")
                continue
            entry.stats.update(ga, gb)
            self._write(f"gradients/{var}", index, ga, gb)

    def _side_gradients(self, side: str, images, weights: dict) -> dict:
        import tensorflow as tf

        runner = self.runners[side]
        variables = runner.trainable_variables
        terms = []
        with tf.GradientTape() as tape:
            for sig in dict.fromkeys(sig for sig, _ in weights):
                outs = runner.run(sig, images, training=self.gradient_training, inputs=self.inputs.get(sig))
                if self.initial.get(side):
                    runner.restore(self.initial[side])  # a training-mode call ran the batch-norm updates
                terms += [tf.reduce_sum(tf.cast(outs[key], tf.float32) * w)
                          for (s, key), w in weights.items() if s == sig]
            loss = tf.add_n(terms)
        grads = tape.gradient(loss, list(variables.values()))
        return {name: None if g is None else tf.convert_to_tensor(g).numpy()
                for name, g in zip(variables, grads)}

    def finish(self) -> None:
        """Restore every model's initial variable values."""
        self.restore()

    def restore(self) -> None:
        for side, runner in self.runners.items():
            if self.initial.get(side):
                runner.restore(self.initial[side])

    def _write(self, name: str, index: int, a, b) -> None:
        if self.writer is not None:
            self.writer.add(f"A/{name}/{index:05d}", a)
            self.writer.add(f"B/{name}/{index:05d}", b)

    def results(self) -> list:
        return [e.result() for e in self.entries.values()]


def _numpy(outputs: dict) -> dict:
    """Outputs as numpy arrays; a SparseTensor or RaggedTensor output as its components (`ids/values`, ...)."""
    result = {}
    for k, v in outputs.items():
        if hasattr(v, "dense_shape") and hasattr(v, "indices"):  # tf.SparseTensor
            result.update({f"{k}/indices": v.indices.numpy(), f"{k}/values": v.values.numpy(),
                           f"{k}/dense_shape": v.dense_shape.numpy()})
        elif hasattr(v, "flat_values") and hasattr(v, "nested_row_splits"):  # tf.RaggedTensor
            result[f"{k}/flat_values"] = v.flat_values.numpy()
            splits = v.nested_row_splits
            result.update({f"{k}/row_splits" + (f"_{i}" if len(splits) > 1 else ""): t.numpy()
                           for i, t in enumerate(splits)})
        else:
            result[k] = _asset_relative(v.numpy() if hasattr(v, "numpy") else np.asarray(v))
    return result


def _asset_relative(value: np.ndarray) -> np.ndarray:
    """String outputs naming a file under a model's `assets/` (BERT's `tokenization_info` returns its vocabulary
    file) as `assets/<name>`: the same asset in two models lives in two directories."""
    value = np.asarray(value)
    if value.dtype.kind not in "OS" or not value.size:
        return value
    flat = value.ravel()

    def relative(item):
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        for sep in {os.sep, "/"}:
            marker = f"{sep}assets{sep}"
            if marker in text and os.path.isfile(text):
                return ("assets/" + text.rsplit(marker, 1)[1].replace(os.sep, "/")).encode()
        return item

    changed = [relative(item) for item in flat]
    if all(a is b for a, b in zip(changed, flat)):
        return value
    return np.array(changed, dtype=object).reshape(value.shape)


def ordered_keys(keys) -> list:
    """Output keys, `default` first, the rest sorted."""
    keys = set(keys)
    return (["default"] if "default" in keys else []) + sorted(keys - {"default"})


def _union(first: list, second: list) -> list:
    return first + [x for x in second if x not in set(first)]


# -- the public functions ------------------------------------------------------------------------------------------


def select_signatures(ra: Runner, rb: Runner, signatures: Sequence[str] | None = None) -> list:
    """The requested signatures (each must exist in both), or every signature the two share, in A's order."""
    if signatures:
        for name in signatures:
            for side, runner in (("A", ra), ("B", rb)):
                if name not in runner.signature_names:
                    raise UnknownSignatureError(
                        f"signature {name!r} is not in {side} ({runner.label}); it has "
                        f"{', '.join(runner.signature_names) or 'none'}: pick one with --signature")
        return list(dict.fromkeys(signatures))
    shared = [s for s in ra.signature_names if s in rb.signature_names]
    if not shared:
        raise UnknownSignatureError(
            f"the models share no signature: A has {', '.join(ra.signature_names) or 'none'}, B has "
            f"{', '.join(rb.signature_names) or 'none'}; they cannot be compared output by output")
    return shared


def signature_feeds(ra: Runner, rb: Runner, signatures: Sequence[str], inputs: dict, explicit: bool = False,
                    drawn: dict | None = None) -> tuple:
    """({signature: {input key: value}} to feed besides images, {signature: why it is not compared}).

    A given value goes to every compared signature that takes that input (in either model); an input not given
    keeps each model's default; a signature with an input that has no default and no value is not compared (an
    error when it was asked for by name), unless `drawn` is a dict: a text model's signature that takes no
    sentences (ELMo's `tokens`: padded words and their lengths) then gets its inputs drawn for each batch
    (`drawn[signature]`: {key: TensorSpec}, see `tensor_inputs.random_tensors`). A value for an input no
    compared signature takes is refused."""
    feeds, not_compared, known = {}, {}, set()
    for sig in signatures:
        specs, types = {}, {}
        for runner in (ra, rb):
            for key, (spec, required) in runner.signature_inputs(sig).items():
                specs[key] = specs.get(key, False) or required
                types.setdefault(key, spec)
        known.update(specs)
        missing = sorted(k for k, required in specs.items() if required and k not in inputs)
        if missing and drawn is not None and _drawable(ra, rb, sig, {k: types[k] for k in missing}):
            drawn[sig] = {k: types[k] for k in missing}
            feeds[sig] = {k: v for k, v in inputs.items() if k in specs}
        elif missing:
            reason = (f"its input {missing[0]!r} has no default in the model, and no value was given; pass "
                      f"{spell(f'inputs={{{missing[0]!r}: VALUE}}', f'--input {missing[0]}=VALUE')} to compare it")
            if explicit:
                raise InvalidInputError(f"signature {sig!r} cannot be compared: {reason}")
            not_compared[sig] = reason
        else:
            feeds[sig] = {k: v for k, v in inputs.items() if k in specs}
    unknown = sorted(set(inputs) - known)
    batched = sorted(k for k in unknown if any(k in r.tensor_inputs(sig) for sig in signatures for r in (ra, rb)))
    if batched:
        raise InvalidInputError(f"input {batched[0]!r} is fed one value per example, from the batches: pass it in an "
                                f".npz with one array per input ({spell('images=PATH.npz', '--images PATH.npz')}), "
                                "or leave it out to draw random examples")
    if unknown:
        given = spell(f"inputs={{{unknown[0]!r}: ...}}", f"--input {unknown[0]}=...")
        raise InvalidInputError(f"{given} names no input of the compared signatures; their inputs besides images: "
                                f"{', '.join(sorted(known)) or 'none'}")
    if not [s for s in signatures if s not in not_compared]:
        reasons = "; ".join(f"{s}: {r}" for s, r in not_compared.items())
        raise InvalidInputError(f"no signature can be compared: {reasons}")
    return feeds, not_compared


def tensor_specs(ra: Runner, rb: Runner, signatures: Sequence[str]) -> dict:
    """{input key: TensorSpec} of the named tensors the compared signatures of both models take (one value per
    key feeds them all); refused when the models disagree on an input's dtype."""
    specs = {}
    for sig in signatures:
        for side, runner in (("A", ra), ("B", rb)):
            for key, spec in runner.tensor_inputs(sig).items():
                known = specs.setdefault(key, spec)
                if known.dtype != spec.dtype or not known.shape.is_compatible_with(spec.shape):
                    raise InvalidInputError(f"input {key!r} is {known.dtype.name}{known.shape} in one model but "
                                            f"{spec.dtype.name}{spec.shape} in {side} ({runner.label}); compare "
                                            "models that take the same inputs")
    if not specs:
        raise InvalidInputError("the compared signatures take no input to feed; pick others with --signature")
    return specs


def index_bounds(ra: Runner, rb: Runner, signatures: Sequence[str]) -> dict:
    """{input key: rows}: integer inputs that index a table in either model (token ids into an embedding), the
    smallest table over the compared signatures; drawn inputs then reach every row."""
    bounds = {}
    for sig in signatures:
        for runner in (ra, rb):
            for key, rows in runner.index_bounds(sig).items():
                bounds[key] = min(rows, bounds.get(key, rows))
    return bounds


def _drawable(ra: Runner, rb: Runner, signature: str, specs: dict) -> bool:
    """Whether a signature's missing inputs can be drawn for each batch: it takes no sentences in either model
    and each input is a dense tensor of known rank with a batch dimension."""
    import tensorflow as tf

    if ra.sentence_input(signature) or rb.sentence_input(signature):
        return False
    return all(isinstance(spec, tf.TensorSpec) and spec.shape.rank and spec.shape[0] is None
               for spec in specs.values())


def input_kind(ra: Runner, rb: Runner) -> str:
    """"images", "text" or "tensors": what both models are fed; models that take different kinds cannot be
    compared."""
    if ra.input_kind != rb.input_kind:
        raise InvalidInputError(f"A ({ra.label}) takes {ra.input_kind} but B ({rb.label}) takes {rb.input_kind}; "
                                "compare models that take the same inputs")
    return ra.input_kind


def split_text_values(inputs: dict) -> tuple:
    """(numeric input values, {input key: sentence source}): a value `@FILE` (`--input default=@sentences.txt`) or
    a list of strings gives the sentences a text model's signatures are fed."""
    numbers, sources = {}, {}
    for key, value in inputs.items():
        if isinstance(value, str):
            sources[key] = value[1:] if value.startswith("@") else value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "US":
            sources[key] = value
        else:
            numbers[key] = value
    return numbers, sources


def check_sentence_keys(ra: Runner, rb: Runner, signatures: Sequence[str], keys) -> None:
    """Sentences are given for an input key: it must be the sentence input of a compared signature (in either
    model), else InvalidInputError naming the inputs sentences feed."""
    names = {n for sig in signatures for r in (ra, rb) for n in [r.sentence_input(sig)] if n}
    unknown = sorted(set(keys) - names)
    if unknown:
        given = spell(f"inputs={{{unknown[0]!r}: ...}}", f"--input {unknown[0]}=@FILE")
        first = sorted(names)[0] if names else "NAME"
        raise InvalidInputError(f"{given} names no sentence input of the compared signatures; their inputs: "
                                f"{', '.join(sorted(names)) or 'none'} (pass e.g. "
                                f"{spell(f'inputs={{{first!r}: ...}}', f'--input {first}=@FILE')})")


def resolve_batch_size(ra: Runner, rb: Runner, batch_size: int | None = None,
                       default: int = DEFAULT_BATCH_SIZE) -> int:
    """Images per batch: a model exported with a fixed batch size (`Runner.fixed_batch_size`) takes exactly that
    many, so it is the batch size, and a different one given is refused; otherwise the one given, else `default`.
    Two models with different fixed batch sizes cannot be fed the same batches."""
    fixed = [(side, r) for side, r in (("A", ra), ("B", rb)) if r.fixed_batch_size is not None]
    if len({r.fixed_batch_size for _, r in fixed}) > 1:
        raise InvalidInputError(
            f"A ({ra.label}) takes batches of exactly {ra.fixed_batch_size} images but B ({rb.label}) of exactly "
            f"{rb.fixed_batch_size} (each was exported with a fixed batch size), so no batch fits both; compare "
            "models that take the same batch size")
    if not fixed:
        return default if batch_size is None else batch_size
    side, runner = fixed[0]
    if batch_size is not None and batch_size != runner.fixed_batch_size:
        raise InvalidInputError(
            f"{validate.option('batch_size', str(batch_size))} does not fit {side} ({runner.label}), which takes "
            f"batches of exactly {runner.fixed_batch_size} images (exported with a fixed batch size); pass "
            f"{validate.option('batch_size', str(runner.fixed_batch_size))} or leave it out")
    return runner.fixed_batch_size


def fill_fixed_batches(ra: Runner, rb: Runner, inputs, seed: int, val_range) -> str | None:
    """For models that take batches of exactly N images: make the number of images a multiple of N with more
    seeded random images (`InputSet.fill_last_batch`; none is dropped). Returns the report's note saying so, or
    None when nothing was added."""
    runner = ra if ra.fixed_batch_size is not None else rb
    if runner.fixed_batch_size is None:
        return None
    asked = len(inputs)
    added = inputs.fill_last_batch(seed, val_range)
    if not added:
        return None
    return (f"{'A' if runner is ra else 'B'} ({runner.label}) takes batches of exactly {runner.fixed_batch_size} "
            f"images: {added} more seeded random image{'s' if added > 1 else ''} (seed {seed}) filled the last batch, "
            f"so {asked + added} images were compared instead of {asked}")


def resolve_image_size(ra: Runner, rb: Runner, image_size=None) -> tuple | None:
    """The size images are resized to: the one given, else the models' expected size (they must agree)."""
    if image_size is not None:
        return tuple(int(x) for x in image_size)
    size_a, size_b = ra.expected_image_size, rb.expected_image_size
    if size_a and size_b and tuple(size_a) != tuple(size_b):
        raise InvalidInputError(
            f"A expects {size_a[0]}x{size_a[1]} images but B expects {size_b[0]}x{size_b[1]}; pass --image-size "
            "HxW to feed both the same size")
    size = size_a or size_b
    return tuple(size) if size else None


def compare(a, b, images=None, *, random: int | None = None, seed: int = 0,
            val_range: Sequence[float] = DEFAULT_VAL_RANGE, batch_size: int | None = None,
            image_size: Sequence[int] | None = None, signatures: Sequence[str] | None = None,
            training: bool = False, gradients: bool = False, atol=None, rtol=None, logits: Sequence[str] = (),
            save_inputs: str | None = None, save_outputs: str | None = None, inputs: dict | None = None,
            allow_unsafe_ops: bool = False, progress: Callable[[str], None] | None = None) -> Report:
    """Run models `a` (the reference) and `b` on the same batches and compare every output.

    `a`, `b`: model directories (TF1 Hub module or TF2 SavedModel), `.tar.gz` archives or cached TF Hub handles
    (see `bridge.formats.open_model`; their graphs are scanned for unsafe ops before anything runs, refused unless
    `allow_unsafe_ops`), or objects already loaded: `bridge.conversion.tf1_to_tf2.ModuleAdapter`s, loaded SavedModels,
    `bridge.parity.runners.Runner`s. `images`: paths (image files, folders, .npy, .npz) or arrays; `random`
    seeded uniform images in `val_range` are fed after them (`DEFAULT_RANDOM` when neither is given).
    `batch_size`: images per batch (default `DEFAULT_BATCH_SIZE`); a model exported with a fixed batch size
    (`Runner.fixed_batch_size`) is fed batches of exactly that size, another one given is refused, and more
    seeded random images fill the last batch when the count is not a multiple of it (the notes say how many).
    `atol`/`rtol`: a number, "NAME:VALUE" strings or a dict (see `bridge.parity.tolerance` for the semantics).
    `logits`: extra output names whose top-1/top-5 agreement to report (`image_classification/default` and a
    classification model's primary output always are). `save_inputs`/`save_outputs`: .npz files written as the
    run streams (one array per batch). `inputs` ({"batch_norm_momentum": 0.99}): values for signature inputs
    besides images, fed to both models wherever a compared signature takes them; an input not given keeps each
    model's default, and a signature with an input that has no default and no value is not compared (named in
    `report.settings["signatures_not_compared"]`, present when there are some, and the notes, with the reason;
    `report.settings["inputs"]` says what was fed). `progress`: called with one line
    per batch.
    """
    tolerances = check_compare_arguments(  # bad options fail before any model loads
        a, b, images=images, random=random, seed=seed, val_range=val_range, batch_size=batch_size,
        image_size=image_size, signatures=signatures, training=training, gradients=gradients, atol=atol, rtol=rtol,
        logits=logits, save_inputs=save_inputs, save_outputs=save_outputs, inputs=inputs)
    from bridge import validate

    inputs = validate.inputs(inputs)
    image_size = parse_image_size(image_size)
    signatures = [signatures] if isinstance(signatures, str) else signatures
    with contextlib.ExitStack() as stack:
        ra, rb = (open_model_runner(model, stack, allow_unsafe_ops) for model in (a, b))
        return _compare(ra, rb, tolerances, images=images, random=random, seed=seed, val_range=val_range,
                        batch_size=batch_size, image_size=image_size, signatures=signatures, training=training,
                        gradients=gradients, logits=logits, save_inputs=save_inputs, save_outputs=save_outputs,
                        inputs=inputs, progress=progress)


def check_compare_arguments(a, b, images=None, *, random=None, seed=0, val_range=DEFAULT_VAL_RANGE,
                            batch_size=None, image_size=None, signatures=None, training=False,
                            gradients=False, atol=None, rtol=None, logits=(), save_inputs=None, save_outputs=None,
                            inputs=None, allow_unsafe_ops=False, json_file=None) -> Tolerances:
    """Every check of `compare`'s arguments that needs no model: paths exist, numbers are in range, output files
    can be written, and tolerance overrides name only modes that are compared. Returns the parsed tolerances."""
    from bridge import validate
    from bridge.formats import check_source
    from bridge.parity.report import check_parent

    for model in (a, b):
        check_source(model)
    if images is not None:
        validate.paths([i for i in _as_list(images) if isinstance(i, (str, os.PathLike))], name="images")
    validate.integer(random, name="random", minimum=0)
    validate.integer(seed, name="seed", minimum=0)
    validate.integer(batch_size, name="batch_size", minimum=1)
    validate.parse_image_size(image_size)
    try:
        low, high = (float(v) for v in val_range)
    except (TypeError, ValueError):
        raise InvalidInputError(f"val_range={val_range!r} is not (low, high); pass e.g. val_range=(0, 1)") from None
    if not low < high:
        raise InvalidInputError(f"value range {low:g},{high:g} is empty; pass "
                                f"{validate.option('val_range', 'LOW,HIGH')} with LOW < HIGH")
    for name in [signatures] if isinstance(signatures, str) else (signatures or []):
        validate.text(name, name="signature")
    for name in logits or ():
        validate.text(name, name="logits")
    validate.flag(training, name="training")
    validate.flag(gradients, name="gradients")
    validate.flag(allow_unsafe_ops, name="allow_unsafe_ops")
    validate.inputs(inputs)
    tolerances = Tolerances.parse(atol, rtol)
    off = {GRADIENTS: not gradients, TRAINING: not training, UPDATES: not training}
    for flag_name, table in (("atol", tolerances.atol), ("rtol", tolerances.rtol)):
        for name, value in table.items():
            mode = None if name is None else next((m for m in off if name == m or name.startswith(m + "/")), None)
            if mode is not None and off[mode]:
                needs = "gradients" if mode == GRADIENTS else "training"
                given = spell(f"{flag_name}={{{name!r}: {value:g}}}", f"--{flag_name} {name}:{value:g}")
                raise InvalidInputError(f"{given} sets a tolerance for {mode}, which are compared only with "
                                        f"{spell(needs + '=True', '--' + needs)}; add it or drop the override")
    for path in (save_inputs, save_outputs, json_file):
        if path is not None:
            check_parent(os.fspath(path))
    for path, name in ((save_inputs, "save_inputs"), (save_outputs, "save_outputs")):
        if path is not None and not os.fspath(path).endswith(".npz"):
            raise InvalidInputError(f"{os.fspath(path)}: arrays are saved as .npz; pass a file name ending in .npz "
                                    f"to {validate.option(name)}")
    return tolerances


def _as_list(images) -> list:
    if isinstance(images, (str, os.PathLike, np.ndarray)) or hasattr(images, "numpy"):
        return [images]
    try:
        return list(images)
    except TypeError:
        raise InvalidInputError(f"images must be paths or arrays, got {type(images).__name__}") from None


def open_model_runner(model, stack: contextlib.ExitStack, allow_unsafe_ops: bool) -> Runner:
    """A runner for `model`; a path is resolved (archives extracted until `stack` closes) and scanned first."""
    if isinstance(model, (str, os.PathLike)):
        from bridge.formats import open_model

        opened = stack.enter_context(open_model(model, check_safety=True, allow_unsafe_ops=allow_unsafe_ops))
        return open_runner(opened.path, label=opened.source, allow_unsafe_ops=allow_unsafe_ops)
    return open_runner(model)


def _compare(ra: Runner, rb: Runner, tolerances: Tolerances, *, images, random, seed, val_range, batch_size,
             image_size, signatures, training, gradients, logits, save_inputs, save_outputs, progress,
             inputs=None) -> Report:
    batch_size = resolve_batch_size(ra, rb, batch_size)
    chosen = select_signatures(ra, rb, signatures)
    inputs, text_sources = split_text_values(inputs or {})
    kind = input_kind(ra, rb)
    drawn = {} if kind == "text" else None
    feeds, not_compared = signature_feeds(ra, rb, chosen, inputs, explicit=bool(signatures), drawn=drawn)
    filled = None  # what was added to fill the last batch of a model with a fixed batch size
    chosen = [s for s in chosen if s not in not_compared]
    only_in = {"A": [s for s in ra.signature_names if s not in rb.signature_names],
               "B": [s for s in rb.signature_names if s not in ra.signature_names]}
    if training or gradients:
        for side, runner in (("A", ra), ("B", rb)):
            if training and not runner.supports_training:
                raise InvalidInputError(f"{side} ({runner.label}) has no training mode (only serving signatures); "
                                        "drop --training")
            if gradients and runner.has_tf1_loops:
                raise InvalidInputError(
                    f"{side} ({runner.label}) holds a TF1 while loop (tf.compat.v1.while_loop): TensorFlow computes "
                    "gradients through one only in a tf.compat.v1 graph (the import shim's hub.Module there), not "
                    f"in the TF2 functions compared here; compare without {spell('gradients=True', '--gradients')}")
    if images is None and random is None and not text_sources:
        random = DEFAULT_RANDOM
    if kind == "tensors":
        from bridge.parity.tensor_inputs import collect_tensors

        if text_sources:
            raise InvalidInputError(f"sentences were given, but {ra.label} and {rb.label} take named tensors; "
                                    "pass an .npz file with one array per input")
        inputs = collect_tensors(tensor_specs(ra, rb, chosen), images, random=random, seed=seed,
                                 batch_size=batch_size, highs=index_bounds(ra, rb, chosen),
                                 words=ra.vocabulary() or rb.vocabulary())
    elif kind == "text":
        from bridge.parity.text_inputs import collect_sentences

        check_sentence_keys(ra, rb, chosen, text_sources)
        text_sources = list(text_sources.values())
        inputs = collect_sentences(_as_list(images) + text_sources if images is not None else text_sources,
                                   random=random, seed=seed, words=ra.vocabulary() or rb.vocabulary(),
                                   batch_size=batch_size)
    else:
        if text_sources:
            raise InvalidInputError(f"sentences were given, but {ra.label} and {rb.label} take images")
        size = resolve_image_size(ra, rb, image_size)
        inputs = collect_inputs(images, random=random, seed=seed, val_range=val_range, image_size=size,
                                batch_size=batch_size)
        filled = fill_fixed_batches(ra, rb, inputs, seed, val_range)
    from bridge.parity.report import NpzWriter

    inputs_writer = NpzWriter(save_inputs) if save_inputs else None
    outputs_writer = NpzWriter(save_outputs) if save_outputs else None
    session = _Session(ra, rb, chosen, tolerances, training=training, gradients=gradients, logits=logits,
                       seed=seed, outputs_writer=outputs_writer, inputs=feeds, drawn=drawn)
    total = len(inputs)
    writers = [w for w in (inputs_writer, outputs_writer) if w is not None]
    try:
        for index, batch in enumerate(inputs.batches()):
            if inputs_writer is not None:
                inputs_writer.add(f"batch_{index:05d}", batch.images)
            session.step(batch, index)
            if index == 0:  # every output name is known now: refuse names that match none
                check_overrides(tolerances, session.known_names())
                check_logits(logits, session.known_names())
            if progress:
                what = {"text": "sentences", "tensors": "examples"}.get(kind, "images")
                progress(f"batch {index + 1}/{inputs.num_batches}: {batch.start + len(batch.names)}/{total} {what}")
        session.finish()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    finally:
        session.restore()
    for writer in writers:
        writer.close()
    results = session.results()
    notes = [f"signature{'s' if len(names) > 1 else ''} only in {side} ({runner.label}), not compared: "
             f"{', '.join(names)}" for (side, names), runner in zip(only_in.items(), (ra, rb)) if names]
    notes += [f"signature {name} not compared: {reason}" for name, reason in not_compared.items()]
    if drawn:
        from bridge.parity.tensor_inputs import DEFAULT_LENGTH, INT_HIGH

        words = "the model's vocabulary" if session.words else "a built-in word list"
        notes += [f"signature {name} takes no sentences: its inputs {', '.join(sorted(specs))} were drawn for each "
                  f"batch (seed {seed}; integers in [0, {INT_HIGH}) unless they index a table, strings from "
                  f"{words}, unknown lengths {DEFAULT_LENGTH})" for name, specs in drawn.items()]
    if filled:
        notes.append(filled)
    notes += missing_outputs_notes(results) + list(session.notes)
    random = {side: None if r.random is None else r.random.to_json() for side, r in (("A", ra), ("B", rb))}
    if any(r.random is None or r.random.ops for r in (ra, rb)):
        from bridge.parity.random_draws import METHOD

        found = "; ".join(f"{side}: {'unknown (an object loaded in memory)' if r.random is None else r.random.describe()}"
                          for side, r in (("A", ra), ("B", rb)))
        dependent = sorted({r.name for r in results if r.mode in (INFERENCE, TRAINING) and r.reason
                            and "depends on random ops" in r.reason})
        notes.append(f"random ops: {found}; {METHOD}; outputs that depend on them: "
                     f"{', '.join(dependent) or 'none of the compared'}")
    settings = {
        "signatures": chosen,
        "modes": [m for m, on in ((INFERENCE, True), (TRAINING, training), (GRADIENTS, gradients),
                                  (UPDATES, training)) if on],
        "gradient_training_mode": session.gradient_training if gradients else None,
        "gradient_loss": GRADIENT_LOSS if gradients else None,
        "seed": seed,
        "signatures_only_in": only_in,
        "random_ops": random,
        "tolerance": {"semantics": SEMANTICS, "default_atol_scale": DEFAULT_ATOL_SCALE,
                      "default_rtol": DEFAULT_RTOL, "overrides": tolerances.to_json()},
    }
    if not_compared:  # only when there is something to say, so reports of image-only models keep their shape
        settings["signatures_not_compared"] = not_compared
    if filled:
        settings["batch_fill"] = filled
    fed = {sig: {k: np.asarray(v).tolist() for k, v in values.items()} for sig, values in feeds.items() if values}
    if fed:
        settings["inputs"] = fed
    describe = inputs.describe()
    describe["sources"] = describe_sources(images)
    return Report(a=ra.describe(), b=rb.describe(), inputs=describe, results=results, settings=settings,
                  notes=notes)


def missing_outputs_notes(results: list) -> list:
    """A note per model naming the outputs that only it has (they fail: the other model cannot match them)."""
    notes = []
    for side in ("A", "B"):
        names = [r.name for r in results if r.status == MISSING and r.reason.endswith(f"only in {side}")]
        if names:
            shown = ", ".join(dict.fromkeys(names))
            notes.append(f"output{'s' if len(set(names)) > 1 else ''} only in {side}: {shown}")
    return notes


def check_logits(logits: Sequence[str], names: set) -> None:
    """Every --logits name is an output of the models (`names`), else an error listing the outputs there are."""
    unknown = [n for n in logits if n not in names]
    if unknown:
        outputs = sorted(n for n in names if "/" in n and not n.startswith(("updates/", "gradients/")))
        raise InvalidInputError(f"--logits {', '.join(map(repr, unknown))} matches no output; pass "
                                f"signature/output_key or an output key (here: {', '.join(outputs)})")


def describe_sources(images) -> list:
    """The inputs as the report lists them: paths as given, arrays by their shape."""
    if images is None:
        return []
    items = [images] if isinstance(images, (str, np.ndarray)) or hasattr(images, "__fspath__") else list(images)
    return [f"array {list(x.shape)}" if isinstance(x, np.ndarray) else str(x) for x in items]


def verify_conversion(src, dst, images=None, *, random: int = DEFAULT_RANDOM, seed: int = 0,
                      batch_size: int | None = None, gradients: bool = False, atol=None, rtol=None,
                      labels: tuple = (None, None), inputs: dict | None = None, allow_unsafe_ops: bool = False,
                      image_size: tuple | None = None, progress: Callable[[str], None] | None = None) -> Report:
    """Prove a conversion: compare the freshly written `dst` with its source `src` (the reference).

    Feeds `random` seeded random images after `images` (paths or arrays, as for `compare`); compares the inference
    outputs of every shared signature, plus the training-mode outputs and batch-norm updates when both models have
    a training mode, and the gradients when asked; default tolerances (1e-5 of each output's scale, rtol 1e-5).
    `labels`: the names to show for src and dst (e.g. the final path while dst is still a temporary directory).
    `inputs`: values for signature inputs besides images, as for `compare`. `image_size`: (height, width) to draw
    the random images at, for models that take any size and record none. `batch_size`: as for `compare` (models
    with a fixed batch size are verified in batches of exactly that size).
    """
    with contextlib.ExitStack() as stack:
        ra, rb = (open_model_runner(model, stack, allow_unsafe_ops) for model in (src, dst))
        for runner, label in zip((ra, rb), labels):
            runner.label = label or runner.label
        training = ra.supports_training and rb.supports_training
        report = compare(ra, rb, images=images, random=random, seed=seed, batch_size=batch_size,
                         training=training, gradients=gradients, atol=atol, rtol=rtol, inputs=inputs,
                         image_size=image_size, progress=progress)
        size = resolve_image_size(ra, rb, image_size)
        if size and ra.takes_any_size and rb.takes_any_size:
            other = other_image_size(size)
            if progress:
                progress(f"the models take any image size: comparing again at {other[0]}x{other[1]}")
            extra = compare(ra, rb, random=OTHER_SIZE_RANDOM, seed=seed + 1, batch_size=batch_size,
                            image_size=other, training=training, gradients=gradients, atol=atol, rtol=rtol,
                            inputs=inputs, progress=progress)
            merge_other_size(report, extra, other)
        return report


OTHER_SIZE_RANDOM = 4  # random images fed at the second size when the models take any size


def other_image_size(size) -> tuple:
    """A second size to verify a model that takes any size at: not square, larger than the default."""
    height, width = size
    return height + max(8, height // 4), width + max(16, width // 2)


def merge_other_size(report: Report, extra: Report, size) -> None:
    """Attach `extra` (the same comparison at another image size) to `report`: it passes only if both do."""
    report.other_sizes.append(extra)
    report.settings["other_image_size"] = {"size": list(size), "status": extra.status}
    report.notes.append(f"the models take any image size: also compared on {OTHER_SIZE_RANDOM} random "
                        f"{size[0]}x{size[1]} images (table below)")
