#!/usr/bin/env bash
# Create .venv (with the system python3, if absent) and install Rill and its dev tools into it.
# Safe to rerun: an up-to-date .venv is left as it is, in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "setup.sh: Rill needs Python >= 3.11; python3 is $(python3 --version 2>&1)" >&2
        exit 1
    }
    echo "setup.sh: creating .venv with $(command -v python3) ($(python3 --version 2>&1))"
    python3 -m venv .venv
fi

# -qq: errors only (-q would still print warnings).
pip=(.venv/bin/python -m pip -qq --disable-pip-version-check)
"${pip[@]}" install --upgrade pip
"${pip[@]}" install -e '.[dev]'
