# Every target creates .venv on first use, so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# Exact versions, the ones the suite was last run with (`make lock` regenerates them from pyproject.toml):
# requirements.lock for development and CI (Python 3.11, every extra but bench), requirements-demo.lock for
# `make demo` (the core dependencies only, at the same versions as requirements.lock), requirements-lambda.lock
# for the Lambda image and package (Python 3.12, the aws extra). pyproject.toml keeps the supported ranges.
LOCK        := requirements.lock
DEMO_LOCK   := requirements-demo.lock
LAMBDA_LOCK := requirements-lambda.lock
LOCK_FLAGS  := --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" --quiet

.PHONY: demo test check lint fmt clean bench bench-quick lambda-package browser screenshots lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Everything (tests, lint, reports, AWS): what `make test` and `make check` need. It includes the demo's.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP) $(DEMO_STAMP)

# Only what the demo needs: the core dependencies (no test, AWS or chart libraries).
$(DEMO_STAMP): pyproject.toml $(DEMO_LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -r $(DEMO_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(DEMO_STAMP)

lock:  ## re-resolve the lock files from pyproject.toml (then run make test before committing them)
	$(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet uv
	.lock-venv/bin/uv pip compile pyproject.toml --extra reports --extra aws --extra test --extra dev \
		--python-version 3.11 $(LOCK_FLAGS) -o $(LOCK)
	.lock-venv/bin/uv pip compile pyproject.toml --python-version 3.11 $(LOCK_FLAGS) -c $(LOCK) -o $(DEMO_LOCK)
	.lock-venv/bin/uv pip compile pyproject.toml --extra aws --python-version 3.12 $(LOCK_FLAGS) -o $(LAMBDA_LOCK)
	rm -rf .lock-venv

demo: $(DEMO_STAMP)  ## simulated Spotify API -> extract -> raw zone -> Iceberg tables -> SQL, into ./lake
	$(BIN)/spotify-pipeline demo

# Debian's Chromium for the browser tests, installed before pytest starts (never racing another install:
# apt waits up to 10 minutes for the package lock). Skipped when chromium is there or we are not root.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the browser tests will be skipped"

# The tests write thousands of small files and SQLite commits, each waiting for its fsync on a disk (one
# catalog commit: 23.8 ms on /tmp vs 0.05 ms on /dev/shm under load). So their temporary folders go on the
# tmpfs /dev/shm when it has more than 4 GB free (what the suite may hold at once), and a passing test's
# folder is deleted as it ends; elsewhere TMPDIR is left as it is.
TEST_TMPDIR := $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 4000000 { print "/dev/shm/spotify-pipeline-tests" }')

test: $(STAMP) browser  ## the whole test suite
	$(if $(TEST_TMPDIR),mkdir -p $(TEST_TMPDIR) && TMPDIR=$(TEST_TMPDIR)) $(BIN)/pytest -q -n 2 --durations=15 \
		-o tmp_path_retention_policy=failed  # two workers: most tests wait on real processes, sockets and disk

screenshots: $(STAMP) browser  ## refresh docs/screenshots (report and dashboard, 1400/390 px, light/dark)
	SPOTIFY_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/serve/test_browser.py -k "fits_and or fit_and"

check: $(STAMP)  ## lint, types, security lint
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r src
	$(BIN)/cfn-lint infra/template.yaml

bench: $(STAMP)  ## benchmarks at 100k and 1M playlist items; refreshes docs/BENCHMARKS.md
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.run --write-docs

bench-quick: $(STAMP)  ## the same scenarios on CI-sized data (no docs refresh)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.run --quick

lambda-package: $(STAMP)  ## Lambda's platform wheels into build/lambda (see docs/AWS.md: too big for a zip)
	rm -rf build/lambda && mkdir -p build/lambda
	$(BIN)/pip install --quiet --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
		--implementation cp --python-version 3.12 \
		--only-binary=:all: --target build/lambda -r $(LAMBDA_LOCK)
	$(BIN)/pip install --quiet --no-deps --target build/lambda .
	@du -sh build/lambda | sed 's/^/unzipped: /'
	@echo "Lambda zip limit: 250 MB unzipped; above it, deploy the container image (infra/Dockerfile, sam build)"

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) lake .pytest_cache .mypy_cache .ruff_cache
