#!/usr/bin/env bash
# Run the demo: digits models and GEMMs on the simulated RTL, checked against onnxruntime and the golden model.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
source scripts/env.sh

exec .venv/bin/python -m sw demo "$@"
