# `make test` installs what the offline suite needs into ./venv (the same virtualenv
# Pulumi uses, see Pulumi.yaml) and runs lint and every test. No cloud, no Pulumi CLI.
PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin

.PHONY: test lint clean render verify bench policy flip cost diff replace

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2

lint: $(VENV)/.installed
	$(BIN)/ruff check .

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

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
# Exits 1 when something changes, so it can gate a pull request.
diff: $(VENV)/.installed
	$(BIN)/python -m tools.render --stack $(STACK) --diff $(REF)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build
