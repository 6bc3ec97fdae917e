#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -ra "$@"
