#!/usr/bin/env bash
# Set up everything logosim needs on a fresh Debian machine with Python 3.11:
# Tesseract (apt, when run as root) and a virtual environment in .venv with the package.
# Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tesseract >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] installing tesseract-ocr (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null
  else
    echo "[setup] WARNING: tesseract not found and not root; run: sudo apt-get install -y tesseract-ocr" >&2
    echo "[setup]          (logosim still runs, without masking text)" >&2
  fi
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.logosim-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing logosim and its dependencies into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python --version), tesseract: $(command -v tesseract || echo missing)"
