"""`bridge inspect` on a text module exported by the genuine library: tables, vocabulary assets, sparse/ragged
signature tensors and partitioned variables."""

from __future__ import annotations

import os

from bridge.inspect import format_report, inspect_model
from tests.oracle.text_modules import text_oracle


def test_inspect_shows_tables_assets_and_composite_signatures():
    path, answers, _ = text_oracle()
    report = inspect_model(os.path.join(path, "text"))
    variant = report["variants"][0]
    assert sorted(t["vocabulary"] for t in variant["tables"]) == ["vocab.txt", "weights.tsv"]
    assert {t["key_dtype"] for t in variant["tables"]} == {"string"}
    tokens = variant["signatures"]["tokens"]
    kinds = {k: v["is_sparse"] and "sparse" or v["is_composite"] and "composite"
             for k, v in answers["text_outputs"]["tokens"].items() if v["is_composite"]}
    assert {k: v["kind"] for k, v in tokens["outputs"].items() if "kind" in v} == kinds
    assert tokens["inputs"]["tokens"]["kind"] == "sparse"
    assert tokens["outputs"]["ragged_ids"]["shape"] == answers["text_outputs"]["tokens"]["ragged_ids"]["shape"]
    assert report["variables"]["partitioned"] == {k: len(v) for k, v in answers["text_variable_map"].items()
                                                  if isinstance(v, list)}
    text = format_report(report)
    assert "from vocab.txt" in text and "(sparse)" in text and "embeddings in 3 parts" in text
