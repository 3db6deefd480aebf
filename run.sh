#!/usr/bin/env bash
# One entry point for a fresh clone:
#   ./run.sh demo    set up .venv on first use, then run the whole path on the bundled sample
#   ./run.sh test    set up .venv on first use, then run the test suite
#   ./run.sh lint    set up .venv on first use, then run ruff check (configured in pyproject.toml)
# Anything else after the verb is passed on (e.g. ./run.sh test -k reader).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY="$VENV/bin/python"
STAMP="$VENV/.graphrec-installed"

setup() {
    if [ ! -x "$PY" ]; then
        echo "==> creating $VENV (first run only)"
        python3 -m venv "$VENV"
    fi
    # Reinstall when the dependency list changes. torch and torchvision come from the
    # package registry together (see pyproject.toml for why).
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
        echo "==> installing graphrec and its dependencies into $VENV (a minute or two the first time)"
        "$PY" -m pip install --quiet --disable-pip-version-check -e ".[test]"
        "$PY" -c "import torch, torchvision, torch_geometric, faiss" \
            || { echo "error: torch/torchvision do not import together in $VENV; remove $VENV and run again" >&2; exit 1; }
        echo "$want" > "$STAMP"
    fi
}

verb="${1:-}"
shift || true
case "$verb" in
    demo) setup; exec "$PY" -m graphrec.demo "$@" ;;
    test) setup; exec "$PY" -m pytest "$@" ;;
    lint) setup; exec "$PY" -m ruff check "$@" . ;;
    *) echo "usage: ./run.sh demo | test [pytest options] | lint [ruff options]" >&2; exit 2 ;;
esac
