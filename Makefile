# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is created on demand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
LEGACY_VENV := .venv-legacy
BIN := $(VENV)/bin
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: demo test test-slow legacy-env env testdata zoo bench fuzz clean

env: $(VENV)/.installed
legacy-env: $(LEGACY_VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/main.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c constraints/main.txt -e '.[test,beam]'
	touch $@

$(LEGACY_VENV)/.installed: constraints/legacy.txt
	test -x $(LEGACY_VENV)/bin/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/pip install $(PIP_FLAGS) -r constraints/legacy.txt
	touch $@

demo: env
	./scripts/demo.sh

# Two test processes (pytest-xdist), each file in one of them so that its module fixtures are built once.
TEST_JOBS ?= 2
test: env legacy-env
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_JOBS) --dist loadfile --durations=15

test-slow: env legacy-env
	$(BIN)/python -m pytest -q -m slow -n $(TEST_JOBS) --dist loadfile --durations=5

testdata: legacy-env
	$(LEGACY_VENV)/bin/python testdata/generate.py

zoo: legacy-env
	$(LEGACY_VENV)/bin/python testdata/zoo/generate.py

# A long mutation-fuzzing campaign: make fuzz N=100000 [SEED=1] [JOBS=2]; failing inputs go to fuzz-crashes/.
N ?= 10000
JOBS ?= 1
fuzz: env
	$(BIN)/python scripts/fuzz.py -n $(N) --jobs $(JOBS) $(if $(SEED),--seed $(SEED))

bench: env legacy-env
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(LEGACY_VENV) demo-out
