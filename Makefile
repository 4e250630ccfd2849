# `make test` installs what the offline suite needs into ./venv (the same virtualenv
# Pulumi uses, see Pulumi.yaml) and runs lint and every test. No cloud, no Pulumi CLI.
PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin

.PHONY: test lint clean

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed
	$(BIN)/ruff check .

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build
