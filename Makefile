# handlib: the two commands of the README, each doing its own set-up on a fresh
# Debian/Ubuntu machine (as root, or with sudo).
#   make test   system libraries, Chromium, .venv, handlib[test,book,lab]; ruff (format, lint); the tests (the smoke book too)
#   make book   system libraries, Chromium, MathJax, .venv, handlib[book]; run the notebooks, build book/
#   make lab    the same set-up, then JupyterLab on 127.0.0.1 with the explore notebook
# Re-running is fast: each set-up step is redone only when its inputs change.

SHELL := /bin/bash
PYTHON ?= python3
PROFILE ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Dr.Jit's CPU backend needs libLLVM; 15 crashes, 19 works (see handlib.rendering.backend).
LLVM_PKG := libllvm19
LIBLLVM_GLOB ?= /usr/lib/*/libLLVM-19.so* /usr/lib/llvm-19/lib/libLLVM*.so*
APT_GET ?= apt-get
APT_CACHE ?= apt-cache

.PHONY: test book lab system clean

# The tests include building the book (smoke profile) and reading it in Chromium.
test: $(STAMPS)/venv-book $(STAMPS)/chromium $(STAMPS)/mathjax-3.2.2.tgz
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

book: $(STAMPS)/venv-book $(STAMPS)/chromium $(STAMPS)/mathjax-3.2.2.tgz
	$(PY) -m handlib.experiments.book $(if $(PROFILE),--profile $(PROFILE))
	@echo "Open book/_build/html/index.html"

# System packages: libLLVM 19 for Mitsuba's CPU variant, venv support for Python. A distribution
# without libllvm19 in its repositories stops here with what to do instead.
system: $(STAMPS)/system
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@if ! ls $(LIBLLVM_GLOB) >/dev/null 2>&1 \
	    || ! $(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1; then \
	  echo "Installing $(LLVM_PKG) and python3-venv with apt"; \
	  $(SUDO) $(APT_GET) update -qq || exit 1; \
	  if ! $(APT_CACHE) show $(LLVM_PKG) >/dev/null 2>&1; then \
	    echo "error: this distribution's repositories have no $(LLVM_PKG) (Mitsuba's CPU variant needs libLLVM 16-21;" >&2; \
	    echo "  15 and older crash it). Either enable your distribution's backports (e.g. Debian bookworm-backports," >&2; \
	    echo "  or Ubuntu's universe) and run make again, or use the conda route: conda env create -f environment.yml" >&2; \
	    echo "  (conda-forge's libllvm19), or set DRJIT_LIBLLVM_PATH to a libLLVM 16-21 you have." >&2; \
	    exit 1; \
	  fi; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) $(APT_GET) install -y -qq $(LLVM_PKG) python3-venv >/dev/null || exit 1; \
	fi
	@touch $@

# Chromium (Debian's package): kaleido draws the figures' PNG copies with it; browser tests open the book.
$(STAMPS)/chromium: | $(STAMPS)/system
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "Installing chromium with apt"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi
	@touch $@

# MathJax through npm, the npm registry's client (installed with apt when missing), so the book's
# equations render offline; handlib.experiments.book checks the tarball's sha256 before unpacking it.
$(STAMPS)/mathjax-3.2.2.tgz: | $(STAMPS)/system
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "Installing npm with apt"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm >/dev/null; \
	fi
	npm pack --silent --pack-destination $(STAMPS) mathjax@3.2.2 >/dev/null

$(VENV)/bin/python: | $(STAMPS)/system
	$(PYTHON) -m venv $(VENV)

# torch first and pinned. pip takes it from the index it is configured with: from PyPI, Linux x86_64
# gets the CUDA build (several GB). TORCH_INDEX=<a wheel index> picks another, e.g. PyTorch's CPU-only
# index (the --index-url its install selector shows for "CPU"); see the README.
TORCH_INDEX ?=
$(STAMPS)/venv-test: pyproject.toml $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	@touch $@

$(STAMPS)/venv-book: pyproject.toml $(STAMPS)/venv-test
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,book,lab]"
	@touch $@

# JupyterLab on 127.0.0.1 with notebooks/explore.ipynb open (notebooks/jupyter_lab_config.py); the
# address with its token is printed, and a desktop browser opens it.
lab: $(STAMPS)/venv-book
	cd notebooks && ../$(VENV)/bin/jupyter lab --config=jupyter_lab_config.py

clean:
	rm -rf $(STAMPS) book/_build book/_cache book/_vendor book/*.ipynb results
