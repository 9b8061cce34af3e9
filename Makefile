# make test / make demo work on a fresh clone: they build .venv, install, and run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: test demo dashboard bench chaos soak lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,demo,hiredis,dashboard]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/redis-atp demo $(DEMO_ARGS)

# the demo fleet with the dashboard on a loopback port (its URL and token are printed); Ctrl-C stops
dashboard: $(STAMP)
	$(BIN)/redis-atp demo --dashboard $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/pip install -q ruff mypy
	$(BIN)/ruff check redis_atp tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos --minutes 2

soak: $(STAMP)
	$(BIN)/python -m benchmarks.chaos --soak --minutes $${SOAK_MINUTES:-30}
