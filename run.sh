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
