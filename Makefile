# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    install into .venv and run the whole system (restarts any process that exits)
#   make test   install into .venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run services test test-hosts lint clean bench bench-streams bench-ab bench-chain

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m devtools.run

# Only the local Redis, PostgreSQL and SMTP sink (for the Django / Flask examples): prints what to export.
services: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m devtools.run --servers-only

test: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -c examples/django_shop/pytest.ini \
		--rootdir examples/django_shop examples/django_shop $(PYTEST_ARGS)

# Several hosts out of network namespaces, links cut (root and `ip netns`; else it skips, saying why).
test-hosts: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m hosts -s tests/hosts $(PYTEST_ARGS)

# Benchmarks (not tests): needs PostgreSQL (BENCH_POSTGRES_URL, default
# postgresql://postgres@127.0.0.1:5432/test); writes BENCHMARKS.md and docs/bench/*.png.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BENCH_COMMAND="make bench $(BENCH_ARGS)" $(PY) -m bench.run $(BENCH_ARGS)

# This tree's pipeline against an earlier commit's, interleaved (~15 min): did the code get slower,
# or the machine busier?  make bench-ab AGAINST=<commit>
bench-ab: $(VENV)/.bench-installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BENCH_COMMAND="make bench-ab AGAINST=$(AGAINST)" $(PY) -m bench.ab --against $(AGAINST)

# One section alone (~3 min): the API's latency with 0 to 5,000 open live-status streams.
bench-streams: $(VENV)/.bench-installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BENCH_COMMAND="make bench-streams" $(PY) -m bench.streams

# One section alone (~4 min): the cross-service chain, orders shipped per second and POST -> shipped latency.
bench-chain: $(VENV)/.bench-installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BENCH_COMMAND="make bench-chain" $(PY) -m bench.chain

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf var .pytest_cache
