# medssl: `make demo` runs the whole pipeline on built-in demo data; `make test` runs the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU wheel on this machine; GPU users: install torch for your CUDA first, then `pip install -e .`
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format docs clean-results tesseract

# Ingestion reads burned-in text with Tesseract's English model (Debian packages; no download
# at run time). Installed here when missing and running as root with apt, else a clear stop.
TESSDATA := $(firstword $(wildcard /usr/share/tesseract-ocr/*/tessdata/eng.traineddata \
	/usr/share/tessdata/eng.traineddata /usr/local/share/tessdata/eng.traineddata))
tesseract:
ifeq ($(TESSDATA),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing tesseract-ocr tesseract-ocr-eng (Debian) for burned-in text checks"; \
	  (apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng >/dev/null \
	   || (apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	       tesseract-ocr tesseract-ocr-eng >/dev/null)); \
	else \
	  echo "error: Tesseract's English data is missing: run 'sudo apt-get install tesseract-ocr tesseract-ocr-eng' (Debian/Ubuntu), then make again"; exit 1; \
	fi
endif

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory tesseract
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,docs,dask,bundle,parquet]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	test -d .git || git init --quiet
	test -d .dvc || $(BIN)/dvc init --quiet
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@echo
	@$(BIN)/medssl results
	@echo "more: results/label_efficiency.md (every mode and seed); then 'source .venv/bin/activate'"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check medssl pipelines tests benchmarks
	$(BIN)/ruff format --check medssl pipelines tests benchmarks
	$(BIN)/mypy medssl

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: $(STAMP)
	$(BIN)/ruff format medssl pipelines tests benchmarks
	$(BIN)/ruff check --fix medssl pipelines tests benchmarks
