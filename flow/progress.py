"""A status line while yosys and nextpnr run: the step, the tool's latest interesting line, the
elapsed time (read from the logs the tools write)."""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from pathlib import Path

__all__ = ["ToolProgress"]


class ToolProgress:
    """One status line while the tools run: the step, the tool's latest interesting line, the
    elapsed time. On a terminal it rewrites itself; elsewhere it prints each new step once."""

    _INTERESTING = re.compile(
        r"^(\d+(\.\d+)*\. Executing [A-Z0-9_]+|Info: (Packing|Placed|Running|Routing|Program "
        r"finished|Max frequency|\s*Iter|Device utilisation|Checksum|Critical path|\s+at "
        r"(initial placer )?iter|Setting up routing|Starting router|Router1 time)|"
        r"Info: +\d+ \| +\d+|ERROR|Warning: .*(timing|frequency))")
    #: Without a terminal (CI logs) a line is printed on each new step and then this often.
    _LOG_EVERY = 30.0

    def __init__(self, out_dir: Path, name: str, stream=sys.stderr):
        self.out_dir, self.name = out_dir, name
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.step = ""
        self.detail = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last_step, self._last_print = "", 0.0

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._show(final=True)

    def _latest_log(self) -> tuple[str, Path] | None:
        logs = [("yosys: synthesis", self.out_dir / f"{self.name}.rpt"),
                ("nextpnr: place and route", self.out_dir / f"{self.name}.tim")]
        present = [(step, path) for step, path in logs if path.exists()]
        return max(present, key=lambda sp: sp[1].stat().st_mtime) if present else None

    def _poll(self):
        latest = self._latest_log()
        if latest is None:
            self.step = "starting the tools (first use compiles them: a minute)"
            return
        step, path = latest
        if step != self.step:
            self.step, self.detail = step, ""
        try:
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return
        for line in reversed(lines):
            if self._INTERESTING.search(line):
                self.detail = re.sub(r"\s+", " ", line.strip())[:70]
                break

    def _show(self, final=False):
        elapsed = time.monotonic() - self.start
        text = f"[{elapsed:5.0f} s] {self.step}: {self.detail}" if self.detail else \
            f"[{elapsed:5.0f} s] {self.step}"
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + text[:width].ljust(width) + ("\n" if final else ""))
            self.stream.flush()
        elif self.step != self._last_step or final or \
                time.monotonic() - self._last_print >= self._LOG_EVERY:
            self._last_step, self._last_print = self.step, time.monotonic()
            print(text, file=self.stream, flush=True)

    def _run(self):
        while not self._stop.wait(0.5 if self.tty else 2.0):
            self._poll()
            self._show()
