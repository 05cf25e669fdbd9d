"""What the ``python -m sw`` commands share: usage errors, the device options, the core's
params from the command line, input arrays and output paths."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from hw.params import ParamsError, RillParams

from .registry import BOARDS_GROUP, registered

__all__ = ["UsageError", "DEVICE_HELP", "add_device_options", "device_options", "check_writable",
           "load_array", "board_params", "params_from", "executor"]


class UsageError(Exception):
    """A command line that cannot work as given; the message says what to give instead."""


DEVICE_HELP = ("golden (the numpy model), sim (the core and link RTL in Verilator; default), "
               "sim+cocotb (the same RTL under cocotb: slower, Python in the loop), "
               "serial:///dev/ttyUSB1?baud=3000000 (a board) or socket://HOST:PORT")


def add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="sim", metavar="URL", help=DEVICE_HELP)
    parser.add_argument("--trace", metavar="FILE", default=None,
                        help="sim device: write a waveform of the run to FILE (.fst, or .vcd); "
                        "builds a tracing model once, which runs slower")
    parser.add_argument("--trace-cycles", metavar="FIRST:LAST", default=None,
                        help="with --trace: only cycles FIRST to LAST-1, counted from reset")


def device_options(args) -> dict:
    """What ``--trace``/``--trace-cycles`` ask of the device, as :func:`open_device` options."""
    options = {}
    if args.trace_cycles is not None and args.trace is None:
        raise UsageError("--trace-cycles needs --trace FILE")
    if args.trace is not None:
        check_writable(args.trace, "--trace")
        options["trace"] = args.trace
    if args.trace_cycles is not None:
        first, sep, last = args.trace_cycles.partition(":")
        try:
            window = (int(first or 0), int(last) if last else 2**63)
        except ValueError:
            window = None
        if not sep or window is None or window[0] >= window[1]:
            raise UsageError(f"--trace-cycles {args.trace_cycles}: give FIRST:LAST, "
                             "e.g. 1000:2000 (either may be left out)")
        options["trace_cycles"] = window
    return options


def check_writable(path: str, option: str) -> None:
    """Refuse, before any work, an output path whose folder does not exist."""
    folder = Path(path).parent
    if Path(path).is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name in it")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {folder} does not exist; create it or "
                         "give a path in an existing folder")


def load_array(path: str, name: str):
    """The array in a ``.npy`` file, or a :class:`UsageError` saying what is wrong with it."""
    import numpy as np
    hint = f"give input {name!r} as a .npy file written by numpy.save"
    try:
        value = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--input {path}: no such file; {hint}") from None
    except (IsADirectoryError, PermissionError) as error:
        raise UsageError(f"--input {path}: cannot read it ({error.strerror}); {hint}") from None
    except (ValueError, OSError, EOFError):   # text, a pickle, an object array, a cut-off file
        raise UsageError(f"--input {path}: numpy cannot read an array from it; {hint}") from None
    if not isinstance(value, np.ndarray):
        value.close()   # an .npz archive of several arrays
        raise UsageError(f"--input {path}: an .npz archive, not one array; {hint}")
    return value


def board_params(name: str) -> RillParams:
    """The params of the core board ``name``'s bitstream carries, from the registered boards."""
    boards = registered(BOARDS_GROUP)
    if name in boards:
        return boards[name]
    if not boards:
        raise UsageError(f"--board-params {name}: no boards are installed (the {BOARDS_GROUP!r} "
                         "entry points); install the project with pip install -e .")
    raise UsageError(f"no board named {name!r}; boards: {', '.join(boards)}")


def params_from(args) -> RillParams:
    """The params to compile for: a board's own (asked over the link) unless ``--rows``/``--cols``
    or ``--board-params`` say otherwise; the defaults, or the named board's, with those overrides,
    for ``golden`` and ``sim``."""
    from .device import BOARD_URLS, ask_params
    if args.board_params is None and args.rows is None and args.cols is None \
            and args.device.startswith(BOARD_URLS):
        return ask_params(args.device)
    defaults = RillParams() if args.board_params is None else board_params(args.board_params)
    try:
        return replace(defaults, rows=defaults.rows if args.rows is None else args.rows,
                       cols=defaults.cols if args.cols is None else args.cols)
    except ParamsError as error:
        raise UsageError(f"{error}; give --rows and --cols of 2 or more") from None


def executor(device: str, params: RillParams, options: dict | None = None, speeds=None):
    """A function running a batch of programs, in order, on one device opened by URL. A simulated
    device's speed (``speed`` after closing) is appended to ``speeds``."""
    from .device import open_device

    def run(programs):
        with open_device(device, params, **(options or {})) as dev:
            responses = [dev.execute(program, response_bytes)
                         for _name, program, response_bytes in programs]
        if speeds is not None and getattr(dev, "speed", None) is not None:
            speeds.append(dev.speed)
        return responses
    return run
