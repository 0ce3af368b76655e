"""`bridge migrate --runner beam`: each model's conversion and verification as one Apache Beam work item.

The work item is the local run's own (`bridge.cli.migrate.migrate_one`, passed in by the caller): a `bridge convert
--json` process per model, its record in DIR/.bridge-migrate/, a model already converted and verified skipped. So a
Beam run resumes like a local one, and its records, summary and JSON report are the local run's.

The pipeline: the models -> Reshuffle (spread over the workers) -> the work item -> every record, gathered into one
file the launching machine reads back. On a cluster, the sources and --out must be readable and writable by every
worker under the same paths (a shared filesystem), and the workers must have the bridge installed.
"""

from __future__ import annotations

from typing import Callable, Sequence

# Importing the parity pipeline's module first: without Beam it raises the one-line install hint.
from bridge.parity.beam import beam, pipeline_options, run_gathered

RESULTS_FILE = "bridge-migrate-records.pkl"


def migrate_on_beam(models: Sequence, work: Callable[[object], dict], beam_options=None,
                    progress: Callable[[str], None] | None = None) -> list:
    """`work(model)` for every model as a Beam work item; the records, in the order of `models`.

    `work` must be picklable (a module-level function or a `functools.partial` of one) and return a record with
    a "name". `beam_options`: Beam pipeline flags (default: DirectRunner with 2 workers as threads).
    """
    options = pipeline_options(beam_options)
    if progress:
        progress(f"running {len(models)} model{'s' if len(models) != 1 else ''} on Beam "
                 f"({options.get_all_options().get('runner') or 'DirectRunner'})")
    gathered = run_gathered(options, RESULTS_FILE, lambda pipeline: (
        pipeline
        | "Models" >> beam.Create(list(models))
        | "Spread" >> beam.Reshuffle()
        | "Migrate" >> beam.Map(work)))
    records = {record["name"]: record for record in gathered}
    return [records[model.name] for model in models]

