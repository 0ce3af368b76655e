"""`bridge migrate SRC... --out DIR`: convert every model found under the sources, each as `bridge convert` does.

Each SRC is a model directory, a .tar.gz archive of one, or a folder to search (a folder of modules, a
TFHUB_CACHE_DIR: models are found at any depth, archives too; a cached model is named after its handle). Each model
is converted into DIR/<name>/ and verified against its source (unless --no-verify), in a process of its own: one
bad model (corrupt, unsafe, failing verification, even crashing) fails alone and the rest go on. The options are
`bridge convert`'s and apply to every model.

Resumable: DIR/.bridge-migrate/<name>.json records each model's outcome. A rerun skips the models an earlier run
converted (and verified, unless it ran with --no-verify) with the same source and options, and redoes the rest; a run killed at any moment (even SIGKILL) leaves
complete models or nothing at each DIR/<name>, since every conversion is written atomically.

Exit status: 0 every model converted, 1 some model failed (verification, or an error such as a corrupt or unsafe
model: see the table), 2 bad usage (nothing to migrate, bad options), 130 interrupted.

Examples:
  bridge migrate testdata/modules --out converted/
  bridge migrate ~/hub_cache old_module.tar.gz --out converted/ --jobs 2 --json-file migrate.json
  bridge migrate tf2_models/ --out tf1_modules/ --to tf1 --kind feature_vector
  bridge migrate testdata/modules --out converted/ --runner beam --beam-options="--direct_num_workers=2"
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from bridge.cli import arguments

STATE_DIR = ".bridge-migrate"
OK, VERIFICATION_FAILED, ERROR, SKIPPED = "ok", "verification_failed", "error", "skipped"


def register(sub) -> None:
    p = sub.add_parser("migrate", help="convert every model in folders, archives or a TF Hub cache, verified, "
                                       "resumable", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_model_source(p, [
        ("sources", "SRC", "+", "a model directory, a .tar.gz archive, or a folder to search for them (a folder of "
                                "modules, a TFHUB_CACHE_DIR)")])
    p.add_argument("--out", metavar="DIR", required=True, help="where the converted models go: DIR/<name>/")
    p.add_argument("--jobs", "-j", default="1", metavar="N", help="convert N models at a time, each in its own "
                                                                   "process (default: 1)")
    arguments.add_conversion(p)
    arguments.add_verification(p)
    arguments.add_output(p)
    arguments.add_scale_out(p, what="", local="processes started here",
                            beam="one Apache Beam work item per model, the same records and report",
                            options_example="--direct_num_workers=4")
    p.set_defaults(run=run)


@dataclasses.dataclass
class Model:
    """A model found under the sources: where it is and the name it gets under --out."""

    source: str
    name: str


# -- finding the models ---------------------------------------------------------------------------------------------


def find_models(sources: list, out: str | None = None) -> list:
    """Every model under `sources`, in a stable order, with unique names; a SRC that is neither a model, an
    archive nor a folder holding some is an error. The folder `out` (where the converted models go, with its
    .bridge-migrate state) is never searched: with --out inside a source folder, a rerun would otherwise take
    the models it wrote for sources."""
    from bridge.formats import check_source
    from legacy.errors import InvalidInputError
    from legacy.format.archive import is_archive
    from legacy.format.conventions import is_model_directory

    skip = os.path.realpath(out) if out else None
    found = []
    for source in sources:
        if not os.path.exists(source):
            raise InvalidInputError(f"{source}: no such file or directory; check the path")
        if is_archive(source) or (os.path.isdir(source) and is_model_directory(source)):
            check_source(source)
            found.append(source)
            continue
        if not os.path.isdir(source):
            raise InvalidInputError(f"{source} is neither a model directory, a .tar.gz archive nor a folder of them")
        before = len(found)
        for root, dirs, files in os.walk(source):
            dirs.sort()
            if root != source and is_model_directory(root):
                found.append(root)
                dirs[:] = []  # a model's own folders (variables/, assets/) hold no models
                continue
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and os.path.realpath(os.path.join(root, d)) != skip]
            found.extend(os.path.join(root, f) for f in sorted(files) if is_archive(os.path.join(root, f)))
        if len(found) == before:
            raise InvalidInputError(f"{source} holds no TF1 Hub module, TF2 SavedModel or .tar.gz archive of one; "
                                    "pass folders that hold models")
    names, models = set(), []
    for path in dict.fromkeys(found):
        name = base = _model_name(path)
        n = 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.add(name)
        models.append(Model(path, name))
    return models


def _model_name(path: str) -> str:
    """The folder name (an archive's without .tar.gz); a TF Hub cache entry is named after its handle."""
    descriptor = path.rstrip(os.sep) + ".descriptor.txt"
    name = os.path.basename(path.rstrip(os.sep))
    if os.path.isfile(descriptor):  # tensorflow_hub writes "Module: <handle>" beside each cache entry
        with open(descriptor, errors="replace") as f:
            handle = next((line.split(":", 1)[1].strip() for line in f if line.startswith("Module:")), "")
        if handle:
            name = handle_name(handle)
    name = re.sub(r"\.(tar\.gz|tgz|tar)$", "", name, flags=re.I)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def handle_name(handle: str) -> str:
    """A readable folder name for a TF Hub handle: its path without host, publisher and query, parts joined by
    '_' (https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4 ->
    imagenet_mobilenet_v2_100_224_feature_vector_4). The last part alone is only the version number."""
    path = re.sub(r"^[a-z][a-z0-9+.-]*://[^/]+", "", handle.split("?", 1)[0], flags=re.I)
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "models":  # Kaggle: /models/<publisher>/<model>/<framework>/<variation>/<version>
        parts = parts[1:]
    if len(parts) > 2:  # the publisher ("google") names no model
        parts = parts[1:]
    return "_".join(parts)


# -- one model ------------------------------------------------------------------------------------------------------


def _fingerprint(path: str) -> str:
    """Changes when the source changes: names, sizes and modification times of its files."""
    digest = hashlib.sha1()
    entries = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, f) for root, _, files in os.walk(path) for f in files)
    for entry in entries:
        st = os.stat(entry)
        digest.update(f"{os.path.relpath(entry, path)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()


def _convert_argv(model: Model, dst: str, args, force: bool) -> list:
    argv = [sys.executable, "-m", "bridge.cli", "convert", model.source, dst, "--json", "--quiet"]
    for flag, value in (("--to", args.to), ("--signature", args.signature), ("--kind", args.kind)):
        if value is not None:
            argv += [flag, value]
    if args.image_size:
        argv += ["--image-size", "x".join(map(str, args.image_size))]
    for path in args.verify_images or []:
        argv += ["--verify-images", path]
    argv += ["--seed", str(args.seed)]
    for key, value in (args.input or {}).items():
        argv += ["--input", f"{key}={json.dumps(value.tolist())}"]
    for flag, on in (("--force", force), ("--no-verify", not args.verify), ("--verify-gradients",
                     args.verify_gradients), ("--allow-unsafe-ops", args.allow_unsafe_ops), ("--verbose",
                     args.verbose)):
        if on:
            argv.append(flag)
    return argv


def _options_key(args) -> dict:
    return {"to": args.to, "signature": args.signature, "kind": args.kind,
            "image_size": list(args.image_size) if args.image_size else None, "verify": args.verify,
            "verify_images": args.verify_images, "verify_gradients": args.verify_gradients, "seed": args.seed,
            **({"inputs": {k: v.tolist() for k, v in args.input.items()}} if args.input else {})}


def _write_record(path: str, record: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_record(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def migrate_one(model: Model, out: str, args) -> dict:
    """Convert one model in a child `bridge convert --json` process; its outcome as a record."""
    dst = os.path.join(out, model.name)
    record_path = os.path.join(out, STATE_DIR, model.name + ".json")
    fingerprint, options = _fingerprint(model.source), _options_key(args)
    previous = _read_record(record_path)
    base = {"name": model.name, "source": model.source, "destination": dst}
    if (previous and previous.get("status") == OK and previous.get("fingerprint") == fingerprint
            and previous.get("options") == options and os.path.isdir(dst)):
        done = ("already converted and verified by an earlier run" if previous.get("verified")
                else "already converted by an earlier run (not verified: --no-verify)")
        return {**previous, **base, "status": SKIPPED, "reason": done, "seconds": 0.0}
    # A destination from an earlier run of ours (started, or done with other options) may be replaced.
    ours = previous is not None and os.path.isdir(dst)
    _write_record(record_path, {**base, "status": "running", "fingerprint": fingerprint, "options": options})
    start = time.monotonic()
    proc = _CHILDREN.run(_convert_argv(model, dst, args, force=args.force or ours),
                         env={**os.environ, "PYTHONPATH": _pythonpath()})
    seconds = round(time.monotonic() - start, 1)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        result = {"status": ERROR, "reason": f"the conversion process died ({last})"}
    record = {**base, "status": result.get("status", ERROR), "reason": result.get("reason", ""),
              "direction": result.get("direction"), "source_bytes": result.get("source_bytes"),
              "destination_bytes": result.get("destination_bytes"), "seconds": seconds,
              "worst_output": _worst(result.get("verification")), "fingerprint": fingerprint, "options": options}
    if record["status"] == OK:
        record["verified"] = result.get("verification") is not None
    _write_record(record_path, record)
    return record


class _Children:
    """The conversion processes running now, so that Ctrl-C can stop them: after an interrupt no new one starts
    (`run` raises KeyboardInterrupt) and the running ones get SIGINT, which a `bridge convert` answers by removing
    its partial output and exiting 130 (every conversion is written atomically)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: set = set()
        self.interrupted = threading.Event()

    def run(self, argv: list, env: dict) -> subprocess.CompletedProcess:
        with self._lock:
            if self.interrupted.is_set():
                raise KeyboardInterrupt
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            self._running.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        # Interrupted (Ctrl-C reaches the children too, and a `bridge convert` then exits 130): no record is
        # written, the model is converted again by the next run. A conversion that finished all the same keeps
        # its outcome.
        if proc.returncode in (130, -signal.SIGINT):
            raise KeyboardInterrupt
        return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)

    def interrupt(self, grace: float = 1.0, timeout: float = 60.0) -> None:
        """Stop starting conversions and stop the running ones. A Ctrl-C on a terminal reaches them already (one
        process group); those still running after `grace` seconds get SIGINT; after `timeout`, SIGKILL."""
        self.interrupted.set()
        with self._lock:
            running = list(self._running)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        for proc in running:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()


_CHILDREN = _Children()


def _pythonpath() -> str:
    """The child must import this very `bridge` (a checkout run with PYTHONPATH, or the installed one)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.pathsep.join([here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def _worst(verification: dict | None) -> dict | None:
    """The output furthest from passing: failures first, then the largest max |A-B| relative to its scale."""
    if not verification or not verification.get("outputs"):
        return None

    def badness(o):
        scale = o.get("scale") or 0
        max_abs = o.get("max_abs") if isinstance(o.get("max_abs"), (int, float)) else float("inf")
        return (o.get("status") != "pass", max_abs / scale if scale else max_abs)

    worst = max(verification["outputs"], key=badness)
    return {"name": worst["name"], "mode": worst["mode"], "status": worst["status"], "max_abs": worst.get("max_abs")}


# -- the command ---------------------------------------------------------------------------------------------------


def run(args) -> int:
    from bridge.cli.output import emit_json, one_line
    from bridge.cli.progress import Bar
    from bridge.parity.report import check_parent, wrap_lines
    from legacy.errors import InvalidInputError
    from legacy.format.atomic import protected_reason

    out = args.out
    if not out.strip():
        raise InvalidInputError("--out is empty (''); pass the directory to write the models into, e.g. converted/")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InvalidInputError(f"--out {out} exists and is not a directory; choose another --out")
    refusal = protected_reason(out, tuple(args.sources))
    if refusal:
        raise InvalidInputError(f"--out {out} {refusal}; choose a new directory for the converted models")
    if args.json_file:
        check_parent(args.json_file)
    if not args.verify and (args.verify_images or args.verify_gradients):
        raise InvalidInputError("--verify-images and --verify-gradients have no effect with --no-verify; drop one")
    for path in args.verify_images or []:
        if not os.path.exists(path):
            raise InvalidInputError(f"{path}: no such file or directory; check the --verify-images path")
    if args.runner != "beam" and args.beam_options:
        raise InvalidInputError("--beam-options needs --runner beam")
    if args.runner == "beam" and args.jobs > 1:
        raise InvalidInputError("--jobs is for the local runner; with --runner beam set the workers in "
                                "--beam-options (e.g. --direct_num_workers=N)")
    models = find_models(args.sources, out)
    real_out = os.path.realpath(out)
    inside = next((m.source for m in models if os.path.isdir(m.source)
                   and real_out.startswith(os.path.realpath(m.source).rstrip(os.sep) + os.sep)), None)
    if inside:
        raise InvalidInputError(f"--out {out} is inside the model {inside}; choose a directory outside the models")
    if args.runner == "beam":  # before anything is written: without Beam, the one-line install hint
        from bridge.cli.migrate_beam import migrate_on_beam
    os.makedirs(os.path.join(out, STATE_DIR), exist_ok=True)
    say = (lambda text: None) if args.quiet else (
        lambda text: print("\n".join(wrap_lines([f"bridge migrate: {one_line(text)}"])), file=sys.stderr, flush=True))
    say(f"{len(models)} model{'s' if len(models) != 1 else ''} to convert into {out}"
        + (f", {args.jobs} at a time" if args.jobs > 1 else ""))
    records = {}
    with Bar(len(models), "migrating", enabled=not (args.quiet or args.json)) as bar:
        if args.runner == "beam":  # the same work item per model, on Beam's workers; the records come back at the end
            done = migrate_on_beam(models, functools.partial(migrate_one, out=out, args=args), args.beam_options, say)
        else:
            done = _migrate_locally(models, out, args)
        try:
            for record in done:
                records[record["name"]] = record
                bar.advance()
                bar.print("\n".join(wrap_lines([
                    f"bridge migrate: {record['name']}: {record['status'].upper()}"
                    + ("" if record["status"] in (OK, SKIPPED) else f": {one_line(record['reason'])}")])),
                    quiet=args.quiet)
        except KeyboardInterrupt:
            if hasattr(done, "close"):
                done.close()  # stops the queued and running conversions now
            raise
    ordered = [records[m.name] for m in models]
    document = summary_document(ordered, out)
    if args.json_file:
        with open(args.json_file, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
    if args.json:
        emit_json(document)
    else:
        print(format_summary(ordered))
    return 0 if document["status"] == OK else 1


def _migrate_locally(models: list, out: str, args):
    """The records of `migrate_one` for every model, --jobs at a time, as each finishes. On Ctrl-C the queued
    models are dropped at once and the running conversions stopped (their partial output removed); the records of
    the models finished before stay, so a rerun goes on from there."""
    _CHILDREN.interrupted.clear()  # a new run (several may run in one process, one after the other)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    try:
        futures = [pool.submit(migrate_one, model, out, args) for model in models]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
    except (KeyboardInterrupt, GeneratorExit):  # Ctrl-C here, or in the caller's loop (which closes us)
        pool.shutdown(wait=False, cancel_futures=True)
        _CHILDREN.interrupt()
        raise
    finally:
        pool.shutdown(wait=True)


def summary_document(records: list, out: str) -> dict:
    counts = {s: sum(r["status"] == s for r in records) for s in (OK, SKIPPED, VERIFICATION_FAILED, ERROR)}
    failed = counts[VERIFICATION_FAILED] + counts[ERROR]
    status = OK if not failed else VERIFICATION_FAILED if counts[VERIFICATION_FAILED] else ERROR
    reason = (f"{counts[OK] + counts[SKIPPED]} of {len(records)} models converted ({counts[SKIPPED]} already done)"
              + (f"; {counts[VERIFICATION_FAILED]} failed verification, {counts[ERROR]} failed with an error"
                 if failed else ""))
    return {"status": status, "reason": reason, "out": out, "counts": counts,
            "models": [{k: v for k, v in r.items() if k not in ("fingerprint",)} for r in records]}


def _number(value) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


def _size(n) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_summary(records: list, width: int | None = None) -> str:
    """The table: model, direction, verdict, worst output, sizes, seconds; the reasons of failures below it; all
    within `width` columns (default: the terminal's)."""
    from bridge.cli.output import one_line
    from bridge.parity.report import fit_table, wrap_lines

    rows = []
    for r in records:
        worst = r.get("worst_output")
        worst_text = ("-" if not worst else "all identical" if not worst["max_abs"] and worst["status"] == "pass"
                      else f"{worst['name']} [{worst['mode']}]: max |A-B| {_number(worst['max_abs'])}")
        verdict = {OK: "PASS" if r.get("verified") else "converted (not verified)", SKIPPED: "done before",
                   VERIFICATION_FAILED: "FAIL", ERROR: "ERROR"}[r["status"]]
        rows.append([r["name"], r.get("direction") or "-", verdict, worst_text,
                     f"{_size(r.get('source_bytes'))} -> {_size(r.get('destination_bytes'))}", f"{r['seconds']:.1f}"])
    lines = fit_table(["model", "direction", "verdict", "worst output", "size", "seconds"], rows, numeric=(5,),
                      shrink=(3, 0), width=width)
    for r in records:
        if r["status"] in (VERIFICATION_FAILED, ERROR):
            lines.append(f"{r['name']}: {one_line(r['reason'])}")
    document = summary_document(records, "")
    lines.append(document["reason"])
    return "\n".join(wrap_lines(lines, width))
