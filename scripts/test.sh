#!/usr/bin/env bash
# Run the test suite on 2 workers: bash scripts/test.sh [pytest arguments...]
# Work stealing: a worker that runs dry takes tests queued for the other, so the long
# bitstream build early in the run does not leave one worker with a backlog at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
source scripts/env.sh

status=0
.venv/bin/python -m pytest -n 2 --dist worksteal "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
