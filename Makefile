# The course's commands. Each one sets itself up on a fresh machine (Python >= 3.10 and make):
# it creates .venv, installs ganlib with what the lessons and tests need, and prepares the data.
#   make lab      open the course in JupyterLab
#   make run      execute every lesson headlessly (papermill, profile auto) into build/
#   make test     every lesson and deck under nbval (smoke profile), then the unit, deck and student tests
#   make check-course  every lesson opened live in JupyterLab (headless Chromium): Run All, each widget moved
#   make test-gpu on a CUDA machine: make test with every lesson on the GPU, then the gpu profile of
#                 LESSONS (default all) and the throughput benchmark, into docs/results/gpu-<date>-<device>.md
#   make slides   build every lecture deck into build/slides/ (HTML + PDF; needs Node >= 20, npm, Chromium)
#   make student  write the student editions of the lessons into build/student/
#   make weights  rebuild the trained weights the course ships (each lesson's cpu profile, seed 0) and check them
SHELL  := bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= auto

.PHONY: install data lab run test check-course test-gpu gpu-check clean weights

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "the course needs Python >= 3.10, this is " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[course,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (gan course)" > /dev/null
	touch $(STAMP)

# Fashion-MNIST: local files (data/ or Debian's /usr/share/datasets) or a download. Lessons 01-02
# need no images, so a machine without it can still run them; the message says how to get it.
data: $(STAMP)
	@$(PY) -m ganlib.data fashion_mnist || echo "note: continuing without Fashion-MNIST (see above)"

# JupyterLab refuses to start as root (containers, Colab-like VMs) unless told it may
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
lab: install data
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/

run: install data
	$(PY) tools/course.py run --profile $(PROFILE) --out build

# nbval executes papermill-prepared copies of every lesson and deck (smoke parameters injected), once each;
# the tests read those executed copies (see conftest.py). NBVAL_ARGS is the nbval command line.
# tests/live (the lessons in a browser) is `make check-course`'s, not make test's.
NBVAL_ARGS := --nbval-lax --nbval-current-env --nbval-cell-timeout=120 --ignore=tests/live build/nbval/notebooks build/nbval/slides

test: install data
	$(PY) tools/course.py prepare
	$(PY) -m pytest $(NBVAL_ARGS) tests

# Every lesson tried as a student would, in JupyterLab in headless Chromium (tools/live.py; needs `npm ci`
# and Chromium, as the decks' checks): Run All, then each widget's controls moved once. About 10 min on 2 cores.
check-course: install data
	$(PY) -m pytest tests/live

LESSONS ?=
NO_CUDA := no CUDA device: make test-gpu needs a GPU
gpu-check:  # before the install, so a machine without a GPU is told at once
	@command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || { echo "$(NO_CUDA)"; exit 1; }

test-gpu: gpu-check install data
	@$(PY) -c 'import sys, torch; torch.cuda.is_available() or sys.exit("no CUDA device: make test-gpu needs a GPU")'
	$(PY) tools/course.py prepare
	mkdir -p build/test-gpu
	@# the report is written whatever the smoke run did (its failures are in the report); then fail if either failed
	GANLIB_DEVICE=cuda GANLIB_DEVICE_CHECK=0 $(PY) -m pytest $(NBVAL_ARGS) tests 2>&1 | tee build/test-gpu/smoke.log; \
	  smoke=$${PIPESTATUS[0]}; $(PY) tools/gpu_report.py --smoke-log build/test-gpu/smoke.log $(LESSONS); report=$$?; \
	  test $$smoke -eq 0 -a $$report -eq 0

# LESSONS: which lessons' runs to rebuild (default: every lesson that ships weights), e.g. LESSONS=03_dcgan
weights: install data
	$(PY) tools/weights.py build $(LESSONS)

clean:
	rm -rf build .pytest_cache

# Lecture decks: npm packages (reveal.js, MathJax, playwright-core) pinned by package-lock.json,
# installed here; Chromium is Debian's `chromium` (or CHROMIUM=/path/to/chrome).
# `make slides SLIDES_FLAGS=--html-only` builds the HTML without Chromium (no PDF, no checks).
NODE_STAMP := node_modules/.installed
SLIDES_FLAGS ?=

.PHONY: slides student

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make slides needs Node >= 20 and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

slides: install data $(NODE_STAMP)
	$(PY) tools/slides.py build --profile $(PROFILE) --out build/slides $(SLIDES_FLAGS)

student: install
	$(PY) tools/student.py --out build/student
