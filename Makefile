# Two entry points, both usable on a fresh clone:
#   make test   - create .venv (torch pinned first), install the project, lint, run the tests
#   make demo   - the same set-up, then the embedded demo: data, shipped models, enhance, evaluate,
#                 summary table (DEMO_ARGS="--train" trains small models instead)
#   make demo-models - retrain the eight shipped demo models from scratch into DEMO_MODELS_DIR
#                 (hours on a CPU; rerun to continue; DEMO_MODELS_DIR=clarity/demo/pretrained
#                 replaces, or continues training, the shipped ones)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# where the CPU build of torch comes from; empty: pip's configured indexes and find-links
TORCH_INDEX_URL ?=
DEMO_ARGS ?=
DEMO_MODELS_DIR ?= demo_data/retrained_models
DEMO_MODELS_ARGS ?=

.PHONY: setup test lint demo demo-models

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install --quiet -e ".[demo,dev]"
	# tinysoundfont renders the demo music; its only dependency (pyaudio, for live playback) is not needed
	$(BIN)/pip install --quiet --no-deps "tinysoundfont==0.3.7"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check .

# pytest exits 5 when it collects no test: that is a failure here too, said in words
test: lint
	$(BIN)/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

demo: setup
	$(BIN)/python baseline/run_demo.py $(DEMO_ARGS)

demo-models: setup
	$(BIN)/python -m clarity.demo.models --models_dir $(DEMO_MODELS_DIR) $(DEMO_MODELS_ARGS)
