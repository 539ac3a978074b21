# The two commands of the quick start.  Both are idempotent and work on a fresh machine:
# they create or update .venv, install what is needed, then run the job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO_SUITE ?= ablation
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test setup system-deps mediapipe-env bench clean

demo: setup
	$(VENV)/bin/vastbench run --suite $(DEMO_SUITE)

bench: setup
	$(VENV)/bin/vastbench bench --json bench.json

# `make test` skips tests marked slow (minutes each: torchrun, kill-and-resume in three stages,
# the MediaPipe ingestion runs); CI runs everything with `make test PYTEST_MARK=`.
PYTEST_MARK ?= not slow

test: setup system-deps mediapipe-env
	@$(PY) -m pytest -q --durations=15 -m "$(PYTEST_MARK)" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

setup: $(STAMP)

# MediaPipe (face mesh for real-data ingestion) pins numpy<2 and protobuf<5, which clash with this
# environment, so it lives in its own venv that vastbench talks to through a worker process.
MP_STAMP := $(VENV)/mediapipe-env/.ready-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
mediapipe-env: $(MP_STAMP)

$(MP_STAMP): $(STAMP)
	$(VENV)/bin/vastbench data ingest-setup
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch/torchvision first, exactly the pinned pair (pip takes them from this machine's disk)
	$(PIP) install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) install -q -e ".[app,dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian packages the browser, PostgreSQL and LaTeX tests use (skipped with a reason when absent).
SYSTEM_PKGS ?= chromium postgresql texlive-latex-base texlive-latex-recommended poppler-utils
system-deps:
	@bash scripts/system-deps.sh $(SYSTEM_PKGS)

clean:
	rm -rf $(VENV) .pytest_cache
