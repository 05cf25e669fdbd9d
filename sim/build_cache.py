"""The simulation build cache's directories: build once, under a lock, and keep the recent ones.

One directory per design (:mod:`sim.runner` names it by a hash of what the build depends on). A
marker file written after a successful build says the directory is complete; an exclusive
``flock`` on a lock file beside it makes concurrent callers (pytest-xdist workers, a demo next to a
test run) build a design only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["MARKER", "CACHE_KEEP", "build_once", "prune", "progress"]

MARKER = "BUILD_OK.json"
#: Finished builds the cache keeps (the least recently used go first): ~5 MB each.
CACHE_KEEP = 64


def progress(message: str) -> None:
    print(f"[rill sim] {message}", file=sys.stderr, flush=True)


def build_once(build_dir: Path, build: Callable[[], None], *, what: str) -> tuple[bool, float]:
    """Run ``build`` into ``build_dir`` unless a finished build is there; one builder at a time.

    Returns ``(built_now, build_seconds)``. A directory without the marker is a build that failed or
    was interrupted: it is wiped and redone under the lock.
    """
    marker = build_dir / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError):   # pruned meanwhile: built again below
            os.utime(build_dir)              # recently used (prune)
            return False, json.loads(marker.read_text())["seconds"]
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_name(build_dir.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process building {what} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.is_file():
                return False, json.loads(marker.read_text())["seconds"]
            shutil.rmtree(build_dir, ignore_errors=True)
            build_dir.mkdir(parents=True)
            progress(f"building {what} (first time for this design; cached in {build_dir}) ...")
            start = time.monotonic()
            build()
            seconds = time.monotonic() - start
            progress(f"built {what} in {seconds:.1f} s" if seconds >= 1
                      else f"built {what} in {seconds * 1000:.0f} ms")
            # Verilator's precompiled headers are ~145 MB of a ~150 MB build and only serve the
            # compile: an unbounded cache of them filled a 100 GB disk.
            for header in build_dir.glob("*.gch"):
                header.unlink()
            partial = marker.with_suffix(".tmp")
            partial.write_text(json.dumps({"seconds": seconds, "finished": time.time()}))
            os.replace(partial, marker)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    prune(build_dir.parent, keep=CACHE_KEEP)
    return True, seconds


def prune(root: Path, *, keep: int) -> None:
    """Remove all but the ``keep`` most recently used finished builds under ``root``.

    A build another process is building (its lock held) is skipped; a reused build's directory
    is touched (:func:`build_once`), so "recently used" means built or run.
    """
    finished = sorted(root.glob(f"*/{MARKER}"), key=lambda marker: marker.parent.stat().st_mtime,
                      reverse=True)
    for marker in finished[keep:]:
        build_dir = marker.parent
        with open(build_dir.with_name(build_dir.name + ".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                marker.unlink(missing_ok=True)   # first, so a half-removed build is redone
                shutil.rmtree(build_dir, ignore_errors=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
