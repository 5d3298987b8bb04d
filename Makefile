# cxr-keras: `make demo` and `make test` create .venv on first use and install into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE := cxr_keras/sample_data
PIP := $(PY) -m pip
STAMP := $(VENV)/.cxr-keras-installed

.PHONY: install browser demo test lint bench test-minimums clean help

help:
	@echo "make demo   - install, then run the demo on the bundled sample (writes runs/demo/)"
	@echo "make test   - install, then lint (ruff) and run the test suite"
	@echo "make bench  - run the benchmarks under benchmarks/ (needs ../shared/data)"
	@echo "make test-minimums - the test suite against the lowest supported versions (.venv-min)"
	@echo "make clean  - remove .venv and runs/"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cxr-keras needs Python >= 3.11, found " + sys.version.split()[0])'
	@$(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV); on Debian/Ubuntu run: sudo apt install python3-venv"; rm -rf $(VENV); exit 1; }
	$(PIP) install --quiet --upgrade pip

# Reinstall when the package metadata or the pinned versions change.
$(STAMP): $(PY) setup.cfg pyproject.toml requirements/constraints.txt
	$(PIP) install --constraint requirements/constraints.txt --editable ".[full,dev,export,app,serve]"
	@touch $@

install: $(STAMP)

# The main job on the bundled sample, all under runs/demo/ (a finished stage is not
# redone: delete runs/demo to start afresh), then the shipped model on a few films.
demo: install
	$(PY) -m cxr_keras datasets summary --recipe demo
	$(PY) -m cxr_keras tune --recipe demo
	$(PY) -m cxr_keras train --recipe demo --from-tuning runs/demo
	$(PY) -m cxr_keras evaluate --model runs/demo --calibrate
	$(PY) -m cxr_keras explain --model runs/demo --layers block3_conv2_relu,last_conv_relu \
		$(SAMPLE)/kermany/PNEUMONIA/person1258_bacteria_3216.jpeg \
		$(SAMPLE)/kermany/NORMAL/IM-0191-0001.jpeg $(SAMPLE)/dicom/pydicom_data_RG1_J2KI.dcm
	@# The shipped model (cxr_keras/pretrained/, never written here) on a few bundled films,
	@# with Grad-CAM.
	@if [ -f cxr_keras/pretrained/kermany_pneumonia/cxr_model.json ]; then \
		$(PY) -m cxr_keras predict --model kermany_pneumonia --gradcam \
			--out runs/demo/shipped_kermany_pneumonia \
			$(SAMPLE)/kermany/PNEUMONIA/person1258_bacteria_3216.jpeg \
			$(SAMPLE)/kermany/NORMAL/IM-0191-0001.jpeg $(SAMPLE)/kermany/NORMAL/IM-0152-0001.jpeg; \
	fi

lint: install
	$(PY) -m ruff check cxr_keras tests benchmarks tools
	$(PY) -m ruff format --check cxr_keras tests benchmarks tools
	@# the layers of setup.cfg's [importlinter]: imports point down, no circles
	$(VENV)/bin/lint-imports

# Debian's Chromium for the app's browser tests, installed where we are root with apt;
# elsewhere those tests skip loudly (and fail under CXR_REQUIRE_BROWSER=1, as in CI).
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		echo "browser tests: using $$(command -v chromium || command -v chromium-browser)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser tests: installing Debian's chromium"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; } \
			|| echo "WARNING: could not install chromium: the browser tests will skip"; \
	else \
		echo "WARNING: no chromium and no root apt: the browser tests will skip" \
			"(Debian/Ubuntu: sudo apt install chromium)"; \
	fi

# Two processes, each test file in one of them (its fixtures built once): the suite's
# processes and TensorFlow imports overlap. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

test: lint browser
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

bench: install
	$(PIP) install --quiet --constraint requirements/constraints.txt --editable ".[bench]"
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/explain_speed.py
	$(PY) benchmarks/app_load.py
	$(PY) benchmarks/ood.py

# The lower bounds of setup.cfg, verified: the same suite on requirements/minimums.txt.
test-minimums:
	rm -rf .venv-min
	$(PYTHON) -m venv .venv-min
	.venv-min/bin/python -m pip install --quiet --upgrade pip
	.venv-min/bin/python -m pip install -r requirements/minimums.txt
	.venv-min/bin/python -m pip install --no-deps --editable .
	.venv-min/bin/python -m pytest

clean:
	rm -rf $(VENV) .venv-min runs
