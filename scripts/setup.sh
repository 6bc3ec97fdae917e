#!/usr/bin/env bash
# Set up everything logosim needs on a fresh Debian machine with Python 3.11:
# Tesseract (apt, when run as root) and a virtual environment in .venv with the package.
# Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: Tesseract for OCR; DejaVu fonts (the OCR tests render text with them).
apt_packages=()
command -v tesseract >/dev/null 2>&1 || apt_packages+=(tesseract-ocr)
command -v espeak-ng >/dev/null 2>&1 || apt_packages+=(espeak-ng)  # phonetic text term (issue 12)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || apt_packages+=(fonts-dejavu-core)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing ${apt_packages[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  else
    echo "[setup] WARNING: missing ${apt_packages[*]} and not root; run: sudo apt-get install -y ${apt_packages[*]}" >&2
    echo "[setup]          (logosim still runs; without tesseract it skips text masking)" >&2
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
  # train: PyTorch (train, export, the tests); a plain `pip install logosim` runs build, search,
  # evaluate, cluster and the API without it (the packaged default graph).
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,train]"
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python --version), tesseract: $(command -v tesseract || echo missing)"
