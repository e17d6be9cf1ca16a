#!/usr/bin/env bash
# sdlab's one entry point. `bash sdlab.sh lab`: set up, then open the notebooks in JupyterLab.
# `bash sdlab.sh test`: set up, then run every test. `bash sdlab.sh book`: the chapters as a static site.
# `bash sdlab.sh trace ...`: any other sdlab command.
# Set-up is idempotent and fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")"
PY=.venv/bin/python

debian() {  # install Debian packages whose command is missing (graphviz's dot, chromium)
  local missing=()
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  echo "sdlab: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "sdlab: could not install ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and try again" >&2; exit 1; }
}

setup() {
  [ -x "$PY" ] || python3 -m venv .venv
  # torch first, pinned: anything that pulls torch in by itself may fetch GBs of CUDA wheels
  "$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q torch==2.13.0
  local stamp=.venv/.sdlab-installed want
  want=$(cat pyproject.toml | sha1sum)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m pip install -q -e ".[test]" && echo "$want" >"$stamp"
  fi
  debian dot:graphviz "$@"
}

case "${1:-lab}" in
  lab)
    setup
    echo "sdlab: JupyterLab is starting; open notebooks/00_pipeline.ipynb first (the whole pipeline in one run)."
    root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-root)
    exec .venv/bin/jupyter lab --notebook-dir=notebooks "${root[@]}" ;;
  book)  # the executed chapters as a static site in build/book (or --out DIR); widgets work offline
    setup npm:npm  # onnxruntime-web for the live page, from the npm registry
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} exec "$PY" -m sdlab.widgets.book "${@:2}" ;;
  test)
    setup chromium:chromium node:nodejs npm:npm  # node: the live page's JS tests; npm: onnxruntime-web
    # the models under test are small: one thread each keeps pytest and the notebook kernels from contending
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} exec "$PY" -m pytest "${@:2}" ;;
  *)  # any other word is an sdlab command: `bash sdlab.sh generate --prompt ...`
    setup
    exec .venv/bin/sdlab "$@" ;;
esac
