# Works on a fresh machine with only python3 and make. Each target creates .venv and
# installs what it needs (one marker file per set of extras), then does its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# constraints.txt pins every dependency (the versions the shipped models were built with):
# every pip install here goes through it.
SETUP_FILES := pyproject.toml setup.py constraints.txt
PIN := -c constraints.txt
# The C kernel extension is compiled at install time: editing it must rebuild it.
KERNEL_SOURCES := $(wildcard firmware/kernel/*.c firmware/kernel/*.h device/engine/kernel_ext/*.c)

.PHONY: demo studio test test-fast lint typecheck bench model voice torture system-deps fresh-check pi-check arm-cost-model fuzz-bundles clean help

help:
	@echo "make demo   - set up and run the simulated artwork on the shipped default model"
	@echo "make studio - set up and open the studio web page on the simulated piece"
	@echo "make test   - set up (including system tools) and run the test suite"
	@echo "make test-fast - the quick local loop: lint, then the tests not marked slow (stops at the first failure)"
	@echo "make lint   - ruff (pyflakes, pycodestyle errors, bugbear, import order, unused noqa) and mypy on device/hardware"
	@echo "make typecheck - mypy on lanthorn.device and lanthorn.hardware (scripts/typecheck.py)"
	@echo "make bench  - int8 engine benchmark against onnxruntime (ratios in one run)"
	@echo "make model  - rebuild the shipped models (the lantern's, the bowl's) from synthetic data and seed (and the voice)"
	@echo "make voice  - rebuild the shipped default voice from data/voice (CC0 text) and seed"
	@echo "make fresh-check - clone HEAD into a new Debian root and run make demo + make test there (root, ~20 min)"
	@echo "make pi-check    - the sdist installed with [pi5] on an arm64 Debian root under qemu: C variant per CPU, selftest"
	@echo "make arm-cost-model - the C kernel's ARM cost model (llvm-mca + qemu instruction counts) into firmware/kernel/README.md"
	@echo "make fuzz-bundles - 10^4 hostile bundles and C blobs (CASES=N, SEED=N); findings -> tests/fuzz_bundles/regressions"
	@echo "make torture - the full fault-injection campaigns (figures in torture-results/; see device/RELIABILITY.md)"

# Debian's python3 ships venv and the CPython headers separately: install them first (as root).
$(BIN)/python:
	@PYTHON=$(PYTHON) bash scripts/system-deps.sh --python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIN) --upgrade pip setuptools wheel

# Install extras X with `$(VENV)/.installed-X`. Re-runs when the packaging files change.
$(VENV)/.installed-%: $(SETUP_FILES) $(KERNEL_SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install -q $(PIN) -e ".[$*]"
	@touch $@

demo: $(VENV)/.installed-sim
	$(BIN)/lanthorn demo

studio: $(VENV)/.installed-studio
	$(BIN)/lanthorn studio --sim

system-deps:
	@PYTHON=$(PYTHON) bash scripts/system-deps.sh

test: system-deps $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest -q -x -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/python -m ruff check .
	$(BIN)/python scripts/typecheck.py

typecheck: $(VENV)/.installed-dev
	$(BIN)/python scripts/typecheck.py

bench: $(VENV)/.installed-dev
	$(BIN)/lanthorn bench

# ARM evidence without a Pi (firmware/kernel/tools/arm_cost_model.py): needs aarch64-linux-gnu-gcc,
# llvm-mca, qemu-aarch64; onnxruntime's column needs an arm64 bookworm root, made here once with
# scripts/debian-root.sh (root and the Debian mirror) unless ARM64_ROOT names one.
ARM64_ROOT ?= $(abspath out/arm64-root)
arm-cost-model: $(VENV)/.installed-dev
	@[ -d "$(ARM64_ROOT)" ] || bash scripts/debian-root.sh arm64 "$(ARM64_ROOT)" || \
	  echo "arm-cost-model: no arm64 root at $(ARM64_ROOT): onnxruntime's columns will be left out"
	$(BIN)/python firmware/kernel/tools/arm_cost_model.py --readme firmware/kernel/README.md --arm64-root "$(ARM64_ROOT)"

CASES ?= 10000
SEED ?= 0
fuzz-bundles: $(VENV)/.installed-dev
	$(BIN)/python tests/bundle_fuzz.py --cases $(CASES) --seed $(SEED)

torture: $(VENV)/.installed-dev
	$(BIN)/lanthorn torture --out torture-results

model: $(VENV)/.installed-dev
	$(BIN)/python scripts/make_model.py
	$(BIN)/python scripts/make_bowl.py
	$(BIN)/python scripts/make_voice.py

voice: $(VENV)/.installed-dev
	$(BIN)/python scripts/make_voice.py

# Installs "from nothing": both need root and the Debian mirror; see the scripts' headers.
fresh-check:
	bash scripts/fresh-check.sh

pi-check:
	bash scripts/pi-check.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
