# Two commands do all set-up on a fresh clone (they create .venv and install the pins):
#   make quickstart   train the main job on the embedded toycars set (~10 min on 2 CPU cores)
#   make test         run the test suite
#   make dist         build the wheel the notebooks install in Colab (dist/cargan_tf-*.whl)
PY := .venv/bin/python
RUN_DIR ?= runs/quickstart
SMOKE ?=

.PHONY: venv quickstart test lint dist clean-venv

venv:
	@bash scripts/ensure_venv.sh

# The full quickstart ends by scoring its generator (packaged toycars features, 1000 samples)
# beside the real-vs-real floor and the baseline recipe trained for about as long.
BASELINE := benchmarks/results/quickstart_baseline.json

quickstart: venv
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m cargan_tf train --preset quick32 --data toycars \
		--run-dir $(RUN_DIR)$(if $(SMOKE),-smoke) $(if $(SMOKE),--smoke)
	$(if $(SMOKE),,TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m cargan_tf evaluate $(RUN_DIR) --n 1000 \
		--floor --baseline $(BASELINE))

test: venv
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	.venv/bin/ruff check .

# The wheel for Colab: upload dist/cargan_tf-<version>-py3-none-any.whl to MyDrive/cargan/ and the
# notebooks' install cell finds it. Built offline with the venv's own setuptools when it has one
# (Python 3.12+ venvs have none: then pip fetches setuptools for an isolated build).
dist: venv
	rm -rf build dist/cargan_tf-*.whl
	$(PY) -m pip wheel -q --no-deps -w dist \
		$(if $(shell $(PY) -c 'import setuptools' 2>/dev/null && echo yes),--no-build-isolation) .
	rm -rf build
	@ls dist/cargan_tf-*.whl

clean-venv:
	rm -rf .venv
