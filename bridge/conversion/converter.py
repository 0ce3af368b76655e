"""Convert between the TF1 Hub format and TF2 Reusable SavedModels: `convert(src, dst)` in both directions.

    convert("old_module/", "new_savedmodel/")            # TF1 Hub -> TF2 SavedModel (direction from the source)
    convert("new_savedmodel/", "old_module/")            # and back

Writes are atomic: `dst` appears complete or not at all, and an existing `dst` is replaced only with `force=True`.
Every conversion proves itself before it appears: the model written to the temporary directory is compared with
its source by the parity harness (`bridge.parity`) on seeded random images (plus `verify_images`), inference and
training mode; if any output differs beyond the default tolerance, `VerificationError` is raised and nothing is
left at `dst` (an existing one stays as it was); `verify=False` skips the check.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from bridge import formats, validate
from legacy.errors import BridgeError, ConversionError, InvalidInputError, VerificationError, spell
from legacy.format.atomic import atomic_directory, check_destination
from legacy.format.conventions import DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, KINDS, kind_fix

TF1 = "tf1"
TF2 = "tf2"
VERIFY_RANDOM = 8  # seeded random images every verification feeds
# Batches of 2, not the harness's 8: both models run at once, each in inference and training mode, so the batch
# sets much of a verification's peak memory (ResNet V2 50: 45 MiB less at 4 than at 8, and another 35-50 MiB less
# at 2, each in the same time).
VERIFY_BATCH_SIZE = 2


@dataclasses.dataclass
class ConversionResult:
    source: str
    destination: str
    direction: str  # "tf1->tf2" or "tf2->tf1"
    source_bytes: int
    destination_bytes: int
    verification: object = None  # the parity Report of the verification, None when skipped

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["verification"] = None if self.verification is None else self.verification.to_json()
        return data


def _progress(message: str) -> None:
    print(f"bridge: {message}", file=sys.stderr, flush=True)


def directory_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def check_paths(src: str, dst: str, force: bool, local: str | None = None) -> None:
    """Refuse a destination that is the source, lies inside it or contains it, or that may not be replaced
    (see `legacy.format.atomic.check_destination`: --force replaces only a model or an empty directory).
    `local`: the directory `src` resolved to (a cached TF Hub handle's folder in TFHUB_CACHE_DIR), protected too."""
    sources = [src] + ([local] if local and local != src else [])
    dst_real = os.path.realpath(dst)
    for path in sources:
        src_real = os.path.realpath(path)
        if dst_real == src_real or dst_real.startswith(src_real + os.sep):
            raise BridgeError(f"destination {dst} is the source or inside it; choose a path outside {path}")
    check_destination(dst, force, protect=tuple(sources))


def convert(src: str, dst: str, *, to: str | None = None, signature: str | None = None, force: bool = False,
            kind: str | None = None, image_size: tuple | str | None = None, verify: bool = True,
            verify_images=None, verify_gradients: bool = False, seed: int = 0, inputs: dict | None = None,
            allow_unsafe_ops: bool = False, optimize: bool = False, progress=_progress) -> ConversionResult:
    """Convert the model at `src` into the other format at `dst`; `to` ("tf1"/"tf2") overrides the detection.

    `src`: a model directory, a `.tar.gz` archive of one or a cached TF Hub handle (`bridge.formats.open_model`);
    its graphs are scanned before anything runs, and ops that touch files, processes or the network are refused
    unless `allow_unsafe_ops`.
    TF1 -> TF2: `signature` picks the TF1 signature that `__call__` serves (default "default"); `optimize` makes
    the inference path (`training=False`, the serving signatures) run a frozen copy of the inference graph with the
    weights as constants, constant-folded and with batch norms folded: faster, but it does not see fine-tuned
    weights, and the SavedModel holds the weights twice (training mode and the variables are unchanged).
    TF2 -> TF1: `kind` ("feature_vector"/"classification") names the image signature to write besides "default"
    (taken from the model's bridge metadata when it has some); `image_size` (h, w) or "HxW" is needed when the
    model's input size is dynamic and nothing records it.
    Verification (on unless `verify=False`): `VERIFY_RANDOM` random images seeded with `seed`, after the images
    of `verify_images` (a folder, files or arrays, as `bridge.parity.compare` takes), in batches of
    `VERIFY_BATCH_SIZE` (of exactly N for a model exported with a fixed batch size N, with more random images
    filling the last batch when needed); `verify_gradients` also
    compares gradients. `inputs` ({"batch_norm_momentum": 0.99}): values fed to signature inputs besides images
    (else the model's defaults; a signature whose input has no default is then not compared, and the report says
    so; the converted model keeps it, with that input required). Raises `VerificationError` (with the report)
    on a mismatch, leaving `dst` untouched.
    """
    from bridge.formats import check_source, open_model

    options = check_convert_arguments(src, dst, to=to, signature=signature, force=force, kind=kind,
                                      image_size=image_size, verify=verify, verify_images=verify_images,
                                      verify_gradients=verify_gradients, seed=seed, inputs=inputs,
                                      allow_unsafe_ops=allow_unsafe_ops, optimize=optimize)
    src, dst, image_size = os.fspath(src), os.fspath(dst), options["image_size"]
    progress = progress or (lambda message: None)
    fmt = check_source(src)  # cheap checks first: the safety scan below imports TensorFlow
    if fmt is not None:
        check_paths(src, dst, force)
        _check_direction(src, fmt, to, signature, kind, image_size, optimize, verify)
    with open_model(src, check_safety=True, allow_unsafe_ops=allow_unsafe_ops) as opened:
        fmt, local = opened.format, opened.path
        _check_direction(src, fmt, to, signature, kind, image_size, optimize, verify)
        check_paths(src, dst, force, local)
        source_bytes = directory_bytes(local)
        verify_size = None
        if fmt.name == formats.TF1_HUB:
            module = _check_verification_size(src, local, signature, image_size, verify)
            _check_input_names(module, options["inputs"])
            (write, reference), direction = _tf1_to_tf2(module, src, signature, allow_unsafe_ops,
                                                        progress, optimize), "tf1->tf2"
            verify_size = image_size
        else:
            _check_kind_known(src, local, kind)
            (write, reference), direction = _tf2_to_tf1(local, src, dst, kind, image_size, progress), "tf2->tf1"
        report = None
        with atomic_directory(dst, force=force, protect=(src, local)) as tmp:
            write(tmp)
            if verify:
                report = _verify(src, reference(), tmp, dst, verify_images, verify_gradients, seed,
                                 allow_unsafe_ops, progress, options["inputs"], verify_size)
    return ConversionResult(src, dst, direction, source_bytes, directory_bytes(dst), report)


def check_convert_arguments(src, dst, *, to=None, signature=None, force=False, kind=None, image_size=None,
                            verify=True, verify_images=None, verify_gradients=False, seed=0, inputs=None,
                            allow_unsafe_ops=False, optimize=False) -> dict:
    """Every check of `convert`'s arguments that needs no model, before any work; errors name the parameter as
    the caller spelled it. Returns the normalized values (`image_size` as a (height, width) tuple)."""
    for name, value in (("src", src), ("dst", dst)):
        if not isinstance(value, (str, os.PathLike)):
            raise InvalidInputError(f"{name}={value!r} is not a path; pass a directory (str or os.PathLike)")
    validate.choice(to, (TF1, TF2), name="to")
    validate.choice(kind, KINDS, name="kind")
    size = validate.parse_image_size(image_size)
    validate.text(signature, name="signature")
    for name, value in (("force", force), ("verify", verify), ("verify_gradients", verify_gradients),
                        ("allow_unsafe_ops", allow_unsafe_ops), ("optimize", optimize)):
        validate.flag(value, name=name)
    validate.integer(seed, name="seed", minimum=0)
    if not verify:
        no_verify = spell("verify=False", "--no-verify")
        for name, flag, value in (("verify_images", "--verify-images", verify_images),
                                  ("verify_gradients", "--verify-gradients", verify_gradients),
                                  ("inputs", "--input", inputs or None)):
            validate.not_with(spell(f"{name}=...", flag), value,
                              f"has no effect with {no_verify} (nothing is verified)",
                              "drop one of the two")
    if verify_images is not None:
        validate.paths(verify_images, name="verify_images")
    return {"image_size": size, "inputs": validate.inputs(inputs)}


def _check_direction(src: str, fmt, to: str | None, signature, kind, image_size, optimize=False,
                     verify=True) -> str:
    """The target format; options that do not apply to the direction are refused, not ignored."""
    target = to or (TF2 if fmt.name == formats.TF1_HUB else TF1)
    if (fmt.name == formats.TF1_HUB) == (target == TF1):
        other = TF1 if target == TF2 else TF2
        raise ConversionError(f"{src} is already a {fmt.label}; pass {spell(f'to={other!r}', f'--to {other}')} "
                              "or a source in the other format")
    if fmt.name == formats.TF1_HUB:
        # --image-size of a TF1 source is the size its verification draws images at, for a module that records
        # none (checked once the module is read, see _tf1_to_tf2); the kind is the module's own.
        wrong = [(spell(f"kind={kind!r}", f"--kind {kind}"), kind)]
        applies = "TF2 -> TF1 conversions only (a TF1 module declares its own kind)"
        if image_size is not None and not verify:
            validate.not_with(spell(f"image_size={image_size!r}", "--image-size " + "x".join(map(str, image_size))),
                              image_size, f"is the size a TF1 -> TF2 verification draws images at, and "
                              f"{spell('verify=False', '--no-verify')} verifies nothing", "drop one of the two")
    else:
        wrong = [(spell(f"signature={signature!r}", f"--signature {signature}"), signature),
                 (spell("optimize=True", "--optimize"), optimize)]
        applies = ("TF1 -> TF2 conversions only (it picks the TF1 signature that __call__ serves, or optimizes "
                   "the converted model's inference graph)")
    for given, value in wrong:
        validate.not_with(given, value, f"applies to {applies}, and {src} is a {fmt.label}", "drop it")
    return target


def _check_kind_known(src: str, local: str, kind) -> None:
    """TF2 -> TF1 of an image model needs a kind: from `kind`, else from the bridge metadata (a model converted from
    TF1 brings its signatures back); a text model's `__call__` becomes the `default` signature. Checked from the
    model's files before it loads."""
    from bridge.inspect import saved_model_takes_text
    from legacy.format.metadata import read_metadata

    metadata = read_metadata(local)
    if kind is None and (metadata is None or not metadata.signatures) and not saved_model_takes_text(local):
        raise ConversionError(f"{src} does not say whether it is a feature vector or a classifier; pass "
                              f"{kind_fix()}")


def _check_verification_size(src: str, local: str, signature: str | None, image_size, verify: bool):
    """A TF1 image module that takes any size and records none (no image_module_info) is verified at the
    `image_size` given, which is refused for one that records its size (its verification uses that) and needed
    for one that does not (unless nothing is verified). Checked from the module's protos, before any work; returns
    the module as read (the conversion goes on from it)."""
    from legacy.format.conventions import INFERENCE_TAGS
    from legacy.format.reader import read_module

    module = read_module(local)
    primary = signature or DEFAULT_SIGNATURE
    try:
        if IMAGE_INPUT_KEY not in module.variant(INFERENCE_TAGS).signature(primary).inputs:
            return module  # not an image signature: the conversion says what it makes of it
    except BridgeError:
        return module  # no such variant or signature: the conversion names it, with what there is
    try:
        recorded = module.expected_image_size(primary)
    except BridgeError:
        recorded = None
    if image_size is not None and recorded is not None:
        given = spell(f"image_size={image_size!r}", "--image-size " + "x".join(map(str, image_size)))
        raise InvalidInputError(f"{src} declares its image size {recorded[0]}x{recorded[1]}, which its "
                                f"verification uses: drop {given}")
    if verify and image_size is None and recorded is None:
        # Any height and width, and nothing recorded: the verification's random images need a size. Refused
        # before anything is written, with what does work.
        raise ConversionError(
            f"{src} takes images of any size and records no expected size (no image_module_info), so the "
            f"verification has no size to draw its random images at; pass "
            f"{spell('image_size=(height, width)', '--image-size HxW')} (the size to verify at; the converted "
            f"model keeps taking any size) or {spell('verify=False', '--no-verify')}")
    return module


def _check_input_names(module, inputs) -> None:
    """Refuse, before any tracing, `inputs` naming no input of any signature of the TF1 module (a typo would
    otherwise surface only when the verification starts). Which signatures are compared is decided later."""
    if not inputs:
        return
    known = {key for tags in module.tags for sig in module.variant(tags).signatures.values()
             for key in sig.inputs if key != IMAGE_INPUT_KEY}
    unknown = sorted(set(inputs) - known)
    if unknown:
        given = spell(f"inputs={{{unknown[0]!r}: ...}}", f"--input {unknown[0]}=...")
        raise InvalidInputError(f"{given} names no input of any signature of {module.path}; their inputs besides "
                                f"images: {', '.join(sorted(known)) or 'none'}")


def _tf1_to_tf2(module, label: str, signature: str | None, allow_unsafe_ops: bool, progress, optimize=False):
    """(write, reference) of converting `module` (a `StoredModule` or its path) to TF2."""
    from bridge.conversion import tf1_to_tf2

    progress(f"reading TF1 Hub module {label}")
    adapter = tf1_to_tf2.build(module, signature=signature, allow_unsafe_ops=allow_unsafe_ops, progress=progress,
                               optimize=optimize)
    if adapter.stored_module.has_tf1_loops:
        progress("note: the module holds a TF1 while loop (tf.compat.v1.while_loop): the converted model runs in "
                 "both modes, but TensorFlow cannot compute gradients through that loop in a TF2 function; "
                 "fine-tune it with the import shim's hub.Module in a tf.compat.v1 graph")
    return (lambda tmp: tf1_to_tf2.write(adapter, tmp, progress=progress)), (lambda: tf1_to_tf2.as_stored(adapter))


def _tf2_to_tf1(src: str, label: str, dst: str, kind: str | None, image_size, progress):
    from bridge.conversion import tf2_to_tf1

    module = tf2_to_tf1.build(src, kind=kind, image_size=image_size, progress=progress)

    def reference():
        """The source as loaded for the conversion (verification loads only what was written)."""
        from bridge.parity.runners import saved_model_runner

        return saved_model_runner(src, module.source, label=label)

    # write() is atomic itself: with force=True it replaces the (empty) temporary directory, which then holds the
    # complete module until verification lets the outer atomic_directory rename it into place.
    return (lambda tmp: tf2_to_tf1.write(module, tmp, force=True,
                                         progress=lambda message: progress(message.replace(tmp, dst)))), reference


def _verify(src: str, reference, tmp: str, dst: str, images, gradients: bool, seed: int, allow_unsafe_ops: bool,
            progress, inputs: dict | None = None, image_size: tuple | None = None):
    """Compare the written model (still in `tmp`) with its source (`reference`: its in-memory adapter or a runner
    on the model loaded for the conversion); raise VerificationError on a mismatch."""
    from bridge.parity.comparison import verify_conversion
    from bridge.parity.report import describe_inputs, minimum_line, summary_line

    progress(f"verifying the converted model against {src}")
    # A model exported with a fixed batch size (images [N, h, w, 3]) runs batches of exactly N only.
    batch_size = getattr(reference, "fixed_batch_size", None) or VERIFY_BATCH_SIZE
    report = verify_conversion(reference, tmp, images=images, random=VERIFY_RANDOM, seed=seed,
                               batch_size=batch_size, gradients=gradients, image_size=image_size,
                               labels=(src, dst), inputs=inputs, allow_unsafe_ops=allow_unsafe_ops,
                               progress=lambda message: progress(f"verifying: {message}"))
    summary = summary_line(report)
    progress(f"parity on {describe_inputs(report.inputs)}")
    if report.settings.get("batch_fill"):
        progress(f"parity: {report.settings['batch_fill']}")
    for name, reason in report.settings.get("signatures_not_compared", {}).items():
        progress(f"parity: signature {name} not compared: {reason}")
    progress(f"parity: {summary}; {minimum_line(report)}")
    if not report.passed:
        raise VerificationError(
            f"the converted model does not match its source ({summary}), so nothing was written to {dst}; this "
            "is a conversion bug: report it with the parity table; --no-verify (verify=False) writes the model "
            f"anyway, to inspect it with `bridge parity {src} {dst}`", report)
    return report
