# Two commands for a new user: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never

.PHONY: install run test lint clean scale-check bench reliability

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (CI sets it), nothing would ever cache the bytecode of
# the dependencies, and every process the tests start would compile them again (~1 s each).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	touch $@

SOURCES := echain workflow models miniapp_api bot biometric notify signing wechat console tests

install: $(VENV)/.synced
	@$(VENV)/bin/python -m compileall -q -j 0 $(SOURCES) >/dev/null  # ours too: only changed files cost anything

run: install
	$(VENV)/bin/echain migrate
	$(VENV)/bin/echain serve

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Two app processes and one worker on one PostgreSQL and one Redis (tests/test_scale_out.py).
SCALE_DB ?= echain_scale_check
SCALE_REDIS_DB ?= 15
scale-check: install
	createdb -h 127.0.0.1 -U root $(SCALE_DB) 2>/dev/null || true
	ECHAIN_TEST_DATABASE_URL=postgres://root@127.0.0.1:5432/$(SCALE_DB) \
	ECHAIN_TEST_REDIS_URL=redis://127.0.0.1:6379/$(SCALE_REDIS_DB) \
	  $(VENV)/bin/python -m pytest -q tests/test_scale_out.py

# Benchmarks (bench/run.py): `make bench`, `make bench BENCH=face`, BENCH_QUICK=1 for short runs. The API one
# needs BENCH_DATABASE_URL=postgres://… and BENCH_REDIS_URL=redis://…/<db> of its own: both are wiped.
bench: install
	BENCH_QUICK=$(BENCH_QUICK) BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) BENCH_REDIS_URL=$(BENCH_REDIS_URL) \
	  $(VENV)/bin/python -m bench $(BENCH)

# The reliability suite at full size (tests/reliability; `make test` runs short versions of the same scenarios)
# on PostgreSQL, so the database-cut scenario runs too. Each scenario's lines also go to var/reliability-report.txt.
RELIABILITY_DB ?= echain_reliability
RELIABILITY_REDIS_DB ?= 14
reliability: install
	createdb -h 127.0.0.1 -U root $(RELIABILITY_DB) 2>/dev/null || true
	ECHAIN_RELIABILITY=full \
	ECHAIN_TEST_DATABASE_URL=postgres://root@127.0.0.1:5432/$(RELIABILITY_DB) \
	ECHAIN_TEST_REDIS_URL=redis://127.0.0.1:6379/$(RELIABILITY_REDIS_DB) \
	  $(VENV)/bin/python -m pytest -m reliability -s -q tests/reliability $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(TOOLS) $(VENV) .pytest_cache
