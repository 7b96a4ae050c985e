# Two commands do all set-up on a fresh clone (they create .venv and install the pins):
#   make quickstart   train the main job on the embedded toycars set (~10 min on 2 CPU cores)
#   make test         run the test suite
#   make dist         build the wheel the notebooks install in Colab (dist/cargan_tf-*.whl)
PY := .venv/bin/python
RUN_DIR ?= runs/quickstart
SMOKE ?=

.PHONY: venv quickstart test lint dist clean-venv colab-venv test-colab wheel-smoke check-py313-wheels

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
	.venv/bin/lint-imports --no-cache

# Colab's stack (requirements-colab.txt: Python 3.13, TensorFlow 2.20.0, Keras 3.13.2, numpy 2.1.3,
# OpenCV 5) in a second environment, .venv-colab: the per-batch loss, engine, frozen-D, training,
# learning-rate decay and resume tests, the packaged judges (they must load on Keras 3.13), the
# notebook tests and notebook 07 (export) under papermill. Notebooks 01-03
# run on the same stack from the wheel (wheel-smoke). CI runs all three targets.
COLAB_PY := .venv-colab/bin/python
COLAB_TESTS := tests/test_batch_losses.py tests/test_engines.py tests/test_frozen_d.py tests/test_judge.py \
	tests/test_notebook_loop.py tests/test_conditional.py tests/test_lr_decay.py \
	tests/test_train_run.py::test_tiny_run_writes_every_artefact \
	tests/test_train_run.py::test_interrupted_run_resumes_from_its_checkpoint \
	tests/test_train_run.py::test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one \
	tests/test_faults.py::test_random_kills_and_a_deterministic_resume_match_an_uninterrupted_run \
	tests/test_notebooks.py
COLAB_K := not test_notebook_runs_under_papermill and not test_train_notebook_honours or 07_export

colab-venv:
	@bash scripts/ensure_colab_venv.sh

test-colab: colab-venv
	TF_CPP_MIN_LOG_LEVEL=2 $(COLAB_PY) -m pytest -q $(COLAB_TESTS) -k "$(COLAB_K)" $(PYTEST_ARGS)

# the package's wheel alone, on Colab's stack, runs notebooks 01-03 in smoke mode
wheel-smoke:
	bash scripts/wheel_smoke.sh

# every pin of requirements.txt and requirements-dev.txt has a Python 3.13 wheel (needs PyPI)
check-py313-wheels:
	PY=$(if $(wildcard $(PY)),$(PY),python3) bash scripts/check_py313_wheels.sh

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
	rm -rf .venv .venv-colab
