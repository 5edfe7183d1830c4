#!/usr/bin/env bash
# ./run.sh app   — set up .venv (first time) and start the app
# ./run.sh test  — set up .venv (first time) and run the test suite
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"

setup() {
  if [ ! -x .venv/bin/python ]; then
    # System site-packages are visible so an already-installed torch (≈5 GB) is reused rather than downloaded again.
    "$PY" -m venv --system-site-packages .venv
  fi
  local stamp=.venv/.requirements.sha256
  local want
  want=$(sha256sum requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
    echo "$want" > "$stamp"
  fi
  browser_runtime
}

# The live plane's model runtime, onnxruntime-web, pinned by package-lock.json: npm ci installs exactly that (checking
# each package's hash), and the files the page loads are copied to static/ort/, which Streamlit serves.
ORT_DIST=node_modules/onnxruntime-web/dist
ORT_FILES="ort.wasm.bundle.min.mjs ort-wasm-simd-threaded.wasm ort.webgpu.bundle.min.mjs ort-wasm-simd-threaded.asyncify.wasm"
browser_runtime() {
  local stamp=static/ort/.package-lock.sha256
  local want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if ! command -v npm >/dev/null; then
      echo "error: npm (Node.js) is needed once to install the browser runtime (Debian: apt-get install npm)" >&2
      exit 1
    fi
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    rm -rf static/ort
    mkdir -p static/ort
    for f in $ORT_FILES; do cp "$ORT_DIST/$f" static/ort/; done
    echo "$want" > "$stamp"
  fi
}

case "${1:-app}" in
  app)
    setup
    shift || true
    exec .venv/bin/python -m streamlit run app.py --browser.gatherUsageStats false "$@"
    ;;
  test)
    setup
    shift || true
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh [app|test] [extra arguments]" >&2
    exit 2
    ;;
esac
