"""Benchmarks of the bridge against the alternatives: `make bench` (or `.venv/bin/python benchmarks/run.py`).

Not tests: nothing here asserts a time. `run.py` prints a table of medians and writes `RESULTS.md`; the pieces
(`contenders`, `sections`, `child`, `report`) are importable so that a smoke test can run them on a tiny module.
"""
