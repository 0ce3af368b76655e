"""`bridge inspect` on a text module exported by the genuine library: tables, vocabulary assets, sparse/ragged
signature tensors and partitioned variables."""

from __future__ import annotations

import json
import os

from bridge.inspect import format_report, inspect_model
from tests.oracle.text_modules import text_oracle


def test_inspect_shows_tables_assets_and_composite_signatures(oracle):
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


def test_inspect_tf2_text_models_shows_tables_assets_and_sparse_inputs(text_converted, capsys):
    """A converted text SavedModel: its tables with their vocabulary assets, its functions' sparse and ragged
    inputs and outputs, and no image facts; text and --json. The train-variant module's table is held once."""
    from bridge.cli import main

    path = text_converted("text")
    report = inspect_model(path)
    assert report["input_kind"] == "text" and "expected_image_size" not in report
    assert sorted((t["vocabulary"], t["key_dtype"], t["value_dtype"]) for t in report["tables"]) == [
        ("vocab.txt", "string", "int64"), ("weights.tsv", "string", "float32")]
    tokens = report["functions"]["tokens"]
    assert tokens["inputs"] == {"tokens": {"dtype": "string", "shape": [None, None], "kind": "sparse"}}
    assert tokens["outputs"]["ids"]["kind"] == "sparse" and tokens["outputs"]["ragged_ids"]["kind"] == "ragged"
    assert main(["inspect", path]) == 0
    text = capsys.readouterr().out
    assert "from vocab.txt" in text and "tokens(tokens: string[?, ?] (sparse))" in text
    assert "(ragged)" in text and "expected image size" not in text
    assert main(["inspect", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tables"] == report["tables"]
    train = inspect_model(text_converted("text_train"))
    assert [t["vocabulary"] for t in train["tables"]] == ["vocab.txt"]


def test_inspect_tf1_text_module_has_no_image_facts(oracle):
    path, _, _ = text_oracle()
    report = inspect_model(os.path.join(path, "text_train"))
    assert report["input_kind"] == "text" and report["signatures_not_kept"] == {}
    assert [len(v["tables"]) for v in report["variants"]] == [1, 1]
    text = format_report(report)
    assert "expected image size" not in text and "cannot be converted" not in text
