#!/usr/bin/env bash
# Run the test suite on 2 workers: bash scripts/test.sh [pytest arguments...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
source scripts/env.sh

status=0
.venv/bin/python -m pytest -n 2 "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
