# `make test` installs what the offline suite needs into ./venv (the same virtualenv
# Pulumi uses, see Pulumi.yaml) and runs lint and every test. No cloud, no Pulumi CLI.
PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin

.PHONY: test lint clean render verify bench policy flip cost diff lock promtool replace

test: $(VENV)/.installed promtool
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2

lint: $(VENV)/.installed
	$(BIN)/ruff check .

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

# promtool (Debian's `prometheus` package) parses the dashboard's PromQL and runs the alert rule
# tests (tests/test_observability.py); installed when missing, with sudo unless root (CI runs as root).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@promtool --version >/dev/null

STACK ?= dev

# Offline render of a stack into build/render (docs/render.md).
render: $(VENV)/.installed
	$(BIN)/python -m tools.render --stack $(STACK) --out build/render

# Check a deployed mesh (docs/verify.md); needs the Pulumi CLI and the stack's outputs.
verify: $(VENV)/.installed
	$(BIN)/python -m tools.verify --stack $(STACK) $(ARGS)

# Progressive flip of a stack's traffic (docs/flip.md), e.g. make flip STACK=prod ARGS="--to green --plan".
flip: $(VENV)/.installed
	$(BIN)/python -m tools.flip --stack $(STACK) $(ARGS)

# Replace a cluster by a successor (docs/replace.md), e.g. make replace STACK=dev ARGS="--replace blue --with blue2 --plan".
replace: $(VENV)/.installed
	$(BIN)/python -m tools.replace --stack $(STACK) $(ARGS)

# Offline performance bench; writes docs/performance.md.
bench: $(VENV)/.installed
	$(BIN)/python -m bench $(ARGS)

# The policy pack's own virtualenv (policy/PulumiPolicy.yaml runs it from policy/venv).
policy: policy/venv/.installed

policy/venv/.installed: policy/requirements.txt
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	touch $@

# Monthly list-price estimate of a stack's declared resources (docs/cost.md).
cost: $(VENV)/.installed
	$(BIN)/python -m tools.cost --stack $(STACK)

REF ?= HEAD

# What the working tree changes against a git ref, per cluster and object, and its cost (docs/render.md).
# Exits 0 whatever changes; ARGS=--exit-code exits 1 when something does (a pull-request gate).
diff: $(VENV)/.installed
	$(BIN)/python -m tools.render --stack $(STACK) --diff $(REF) $(ARGS)

# The hash-locked installs of the workflows that hold a cloud identity (docs/delivery.md):
# `pip install --require-hashes -r requirements.lock` (the program) and policy/requirements.lock (the
# policy pack). Run after editing requirements.txt or policy/requirements.txt; existing pins are kept
# unless you pass LOCK_ARGS=--upgrade. Needs PyPI; uv is installed into build/uv at a pinned version.
UV_VERSION := 0.13.9
UV_COMPILE := build/uv/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--no-config --index-url https://pypi.org/simple --custom-compile-command "make lock" $(LOCK_ARGS)

lock:
	test -x build/uv/bin/python || $(PYTHON) -m venv build/uv
	build/uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV_COMPILE) requirements.txt -o requirements.lock
	$(UV_COMPILE) policy/requirements.txt -o policy/requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build
