# One entry point for a fresh machine: each target sets up what it needs (a venv in .venv with the
# matched torch pair and the project installed in editable mode), then runs.
#   make demo   - the main job on the bundled sample (offline, CPU, tiny random judge: scores mean nothing)
#   make test   - the test suite (pytest)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.micon-installed

.PHONY: setup demo lint test bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[diffusers,api,upstream,dev,report]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/micon run --model collage --tasks micon --source sample \
		--judge hf --judge_args pretrained=micon-tiny-random,mode=logits \
		--output_path out/demo --seed 0

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/dar_overhead.py
	$(BIN)/python benchmarks/dar_in_block.py
	$(BIN)/python benchmarks/judge_throughput.py
	$(BIN)/python benchmarks/resume.py

clean:
	rm -rf out build *.egg-info
