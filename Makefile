# Routine commands, shared by people and CI (`.ci/run` calls `make test`).
#   make install   create .venv and install taskplan with its pinned dependencies
#   make test      unit + smoke tests (what CI runs)
#   make lint      ruff: lint and import order (CI runs it too; settings in pyproject.toml)
#   make repro     the whole pipeline on the default profile (dvc repro register; cross-task: dvc repro cross_task)
#   make train-ddp a training stage under accelerate launch, several processes (STAGE=sft NPROC=2; infra/README.md)
#   make bench     speed benchmarks (ratios against anchors measured in the same run)
#   make stack     the production-like stack on this machine, no Docker (infra/local/up.sh; infra/README.md)
#   make stack-down  stop what `make stack` started (infra/local/down.sh; WIPE=1 also deletes .stack/)
SHELL := /bin/bash
PY := .venv/bin/python
export MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false \
       PREFECT_SERVER_ANALYTICS_ENABLED=false HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       DO_NOT_TRACK=1 PREFECT_LOGGING_LEVEL=WARNING
# uv does not read pip's configuration, so pass on what pip is configured with on this machine
# (find-links, extra indexes, constraints: `pip config list`, incl. PIP_* variables) instead of naming
# any machine's folders here; uv's own UV_* variables apply as usual. Where torch's CPU wheel is only
# found through pip's configuration, this is what keeps uv from taking the CUDA build.
pipcfg = $(shell python3 -m pip config list 2>/dev/null | sed -n "s/^\(global\|:env:\)\.$(1)='\(.*\)'$$/\2/p" | head -1)
FIND_LINKS := $(call pipcfg,find-links)
EXTRA_INDEX := $(call pipcfg,extra-index-url)
CONSTRAINT := $(call pipcfg,constraint)
UV_FLAGS := --compile-bytecode $(foreach f,$(FIND_LINKS),--find-links $(f)) \
  $(foreach u,$(EXTRA_INDEX),--extra-index-url $(u)) $(foreach c,$(CONSTRAINT),--constraint $(c)) \
  $(if $(EXTRA_INDEX),--index-strategy unsafe-best-match)

.PHONY: install test lint smoke bench repro clean stack stack-down stack-test train-ddp
install: .venv/.installed
.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q uv
	$(PY) -m uv pip install --python $(PY) $(UV_FLAGS) -e '.[dev,stack]'
	touch $@

test: install
	$(PY) -m pytest -q -m "not slow and not gpu" --durations=15

lint: install
	.venv/bin/ruff check src tests benchmarks flows infra

smoke: install
	$(PY) -m pytest -q -m smoke

# Postgres, S3 (moto), MLflow and Prefect servers, the nightly deployment and a worker, on 127.0.0.1 with
# the ports of infra/stack.env; then `source .stack/client.env`. Postgres comes from the OS (.ci/run).
stack: install
	infra/local/up.sh

stack-down:
	infra/local/down.sh $(if $(WIPE),--wipe)

# only the stack tests (make test runs them too): their own stack on free ports, removed afterwards
stack-test: install
	$(PY) -m pytest -q -m stack tests/stack

# a training stage under `accelerate launch` with the DDP config: NPROC processes (GPUs, or CPU processes
# talking over gloo where there is no GPU). On GPUs use PRECISION=bf16 (the config's); CPUs train in fp32.
#   make train-ddp STAGE=grpo NPROC=8 PRECISION=bf16 ARGS="--resume"
STAGE ?= sft
NPROC ?= 2
PRECISION ?= no
train-ddp: install
	.venv/bin/accelerate launch --config_file infra/accelerate/multi_gpu_ddp.yaml --num_processes $(NPROC) \
	  --mixed_precision $(PRECISION) .venv/bin/taskplan $(STAGE) $(ARGS)

bench: install
	$(PY) -m benchmarks.bench_planner

# DVC runs `taskplan ...` from PATH, so the venv goes first. data/ (frozen inputs, data.dvc) comes
# from the DVC remote; on a fresh clone with an empty remote it is rebuilt by `taskplan suite`
# (deterministic, so data.dvc's hash still matches).
# The registry lives in MLflow's store, outside the repository: on a fresh clone DVC finds the register
# stage up to date (its committed outputs match) while the new store is empty, so `register --if-missing`
# adds the model folder there (idempotent: a store that holds the folder already is left alone).
repro: install data/suite.json
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/dvc repro register
	.venv/bin/taskplan register --if-missing

data/suite.json:
	.venv/bin/dvc pull -q data.dvc || .venv/bin/taskplan suite --out data/suite.json

clean:
	rm -rf .venv .pytest_cache
