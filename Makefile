# handlib: the two commands of the README, each doing its own set-up on a fresh
# Debian/Ubuntu machine (as root, or with sudo).
#   make test   system libraries, Chromium, .venv, handlib[test,book]; run the tests (the smoke book too)
#   make book   system libraries, Chromium, MathJax, .venv, handlib[book]; run the notebooks, build book/
# Re-running is fast: each set-up step is redone only when its inputs change.

SHELL := /bin/bash
PYTHON ?= python3
PROFILE ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Dr.Jit's CPU backend needs libLLVM; 15 crashes, 19 works (see DESIGN notes / handlib.backend).
LLVM_PKG := libllvm19

.PHONY: test book system clean

# The tests include building the book (smoke profile) and reading it in Chromium.
test: $(STAMPS)/venv-book $(STAMPS)/chromium $(STAMPS)/mathjax-3.2.2.tgz
	$(PY) -m pytest -q

book: $(STAMPS)/venv-book $(STAMPS)/chromium $(STAMPS)/mathjax-3.2.2.tgz
	$(PY) -m handlib.book $(if $(PROFILE),--profile $(PROFILE))
	@echo "Open book/_build/html/index.html"

# System packages: libLLVM 19 for Mitsuba's CPU variant, venv support for Python.
system: $(STAMPS)/system
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@if ! ls /usr/lib/*/libLLVM-19.so* /usr/lib/llvm-19/lib/libLLVM*.so* >/dev/null 2>&1 \
	    || ! $(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1; then \
	  echo "Installing $(LLVM_PKG) and python3-venv with apt"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(LLVM_PKG) python3-venv >/dev/null; \
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

# MathJax from the npm registry, so the book's equations render offline (digest checked by handlib.book).
$(STAMPS)/mathjax-3.2.2.tgz:
	@mkdir -p $(STAMPS)
	curl -fsSL -o $@.part https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz && mv $@.part $@

$(VENV)/bin/python: | $(STAMPS)/system
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: a bare or newer torch pulls several GB of CUDA packages.
$(STAMPS)/venv-test: pyproject.toml $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	@touch $@

$(STAMPS)/venv-book: pyproject.toml $(STAMPS)/venv-test
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,book]"
	@touch $@

clean:
	rm -rf $(STAMPS) book/_build book/_cache book/_vendor book/*.ipynb results
