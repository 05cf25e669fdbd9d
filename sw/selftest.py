"""Board bring-up: ``python -m sw selftest --device URL`` checks a device step by step, each step
a verdict line and, when it fails, its likely cause and what to do.

The steps build on each other: a link that answers, a device that speaks this driver's ISA with
the params the host expects, every byte value through the link both ways and through the array,
one GEMM in each precision byte for byte as the golden model answers it (counters included, so
the cycle count too), a refused command after which the device still answers, and the link's
error counts on both sides (the device's UART framing errors and the host frames it refused,
from the rolling counts in its frames' flags). Once a step leaves nothing to build on (no
answer at all), the rest are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hw import isa
from hw.isa import Config, Opcode, OutType, Precision, Rounding
from hw.params import ParamsError, RillParams

from .device import BOARD_URLS, open_device
from .device_base import Device, DeviceError
from .golden import GoldenCore
from .link import LinkTimeout
from .program import Program, gemm_program
from .qparams import random_qparams
from .tflite_kernels import quantize_multiplier

__all__ = ["Verdict", "run_selftest"]

_SYNC_TAG = 0x5A17
_NO_ANSWER = ("no answer: the wrong port or baud rate, or no Rill bitstream on the board; "
              "program it (python -m hw.build --board NAME --program) and give the baud it was "
              "built for (serial:///dev/ttyUSB1?baud=3000000)")


@dataclass(frozen=True)
class Verdict:
    step: str
    ok: bool | None        #: None: skipped
    detail: str
    cause: str = ""        #: for a failure: the likely cause, and what to do

    def lines(self) -> list[str]:
        mark = {True: "pass", False: "FAIL", None: "skip"}[self.ok]
        out = [f"{mark}  {self.step:<22}{self.detail}"]
        if self.ok is False and self.cause:
            out.append(f"      likely cause: {self.cause}")
        return out


class _Stop(Exception):
    """A step left nothing for the next ones to build on."""


def _link(url: str, params: RillParams, options: dict) -> tuple[Device | None, Verdict]:
    try:
        device = open_device(url, params, check=False, **options)
    except LinkTimeout as error:
        return None, Verdict("link", False, str(error), _NO_ANSWER)
    except (OSError, DeviceError) as error:
        cause = ("nothing listens there: start the device's server, or check HOST:PORT"
                 if url.startswith("socket://") else
                 "the port cannot be opened: check the cable and the port's name "
                 "(ls /dev/ttyUSB*) and that nothing else holds it"
                 if url.startswith("serial://") else "see the message")
        return None, Verdict("link", False, str(error), cause)
    try:
        response = device.execute(isa.encode(Opcode.SYNC, tag=_SYNC_TAG),
                                  isa.RESPONSE_HEADER_BYTES + 2, keeps_resident=True)
    except DeviceError as error:
        device.close()
        return None, Verdict("link", False, str(error), _NO_ANSWER)
    if response[0] != isa.Status.OK.value or response[4:6] != _SYNC_TAG.to_bytes(2, "little"):
        device.close()
        return None, Verdict("link", False, f"SYNC answered {response.hex()}", _NO_ANSWER)
    return device, Verdict("link", True, f"{url} answers (SYNC echoed its tag)")


def _identity(device: Device, params: RillParams) -> tuple[RillParams | None, Verdict]:
    response = device.execute(isa.encode(Opcode.INFO),
                              isa.RESPONSE_HEADER_BYTES + isa.INFO_BYTES, keeps_resident=True)
    try:
        reported, version = RillParams.from_info_bytes(response[isa.RESPONSE_HEADER_BYTES:])
    except ParamsError as error:
        return None, Verdict("ISA and params", False, f"INFO is not Rill's: {error}",
                             "another design answers on this port, or the link corrupts data")
    if version != isa.ISA_VERSION:
        return None, Verdict(
            "ISA and params", False,
            f"the device speaks ISA v{version}, this driver v{isa.ISA_VERSION}",
            "bitstream and driver come from different versions of Rill: rebuild the bitstream "
            "(python -m hw.build --board NAME) with this checkout, or use the matching driver")
    differ = [f"{f.name} {getattr(reported, f.name)} (expected {getattr(params, f.name)})"
              for f in fields(RillParams) if getattr(reported, f.name) != getattr(params, f.name)]
    if differ:
        return reported, Verdict(
            "ISA and params", False, f"ISA v{version}, but the device differs: "
            + "; ".join(differ),
            "the bitstream was built with other params: rebuild it for these, or pass "
            "--board-params NAME of the board it was built for")
    return reported, Verdict("ISA and params", True,
                             f"ISA v{version}, {reported.rows}x{reported.cols} array, the "
                             "params expected")


def _against_golden(device: Device, params: RillParams, step: str, prog: Program,
                    what: str) -> Verdict:
    """``prog`` on the device and on a fresh golden model, compared answer by answer: statuses,
    opcodes and payloads equal; instruction indices and counters (the device counts since its
    reset) equal up to one offset each, so the cycles and instructions spent agree; stall
    counts, which a slow link raises, are not compared."""
    got = device.execute(prog.to_bytes(), prog.response_bytes, prog.frame_cuts())
    golden = GoldenCore(params)
    at, offsets, problem = 0, {}, None
    for number, chunk in enumerate(prog.chunks):
        want = golden.feed(chunk)
        answer, at = got[at:at + len(want)], at + len(want)
        if not want:
            continue
        if answer[:2] != want[:2]:
            problem = (f"instruction {number} answered status {answer[0]:#04x} opcode "
                       f"{answer[1]:#04x}, the golden model status {want[0]:#04x} opcode "
                       f"{want[1]:#04x}")
            break
        pairs = [("index", int.from_bytes(answer[2:4], "little"),
                  int.from_bytes(want[2:4], "little"), 1 << 16)]
        if want[1] == Opcode.READ_COUNTERS.value and want[0] == isa.Status.OK.value:
            pairs += [(name, int.from_bytes(answer[4 + 4 * i:8 + 4 * i], "little"),
                       int.from_bytes(want[4 + 4 * i:8 + 4 * i], "little"), 1 << 32)
                      for i, name in enumerate(isa.COUNTER_NAMES) if name != "stalls"]
        elif answer[4:] != want[4:]:
            first = next(i for i, (a, b) in enumerate(zip(answer[4:], want[4:])) if a != b)
            problem = f"instruction {number}'s payload differs from byte {first}"
            break
        for name, mine, theirs, modulus in pairs:
            offset = (mine - theirs) % modulus
            if offsets.setdefault(name, offset) != offset:
                problem = f"instruction {number}: the {name} count differs by " \
                          f"{(offset - offsets[name]) % modulus} from the golden model's"
        if problem:
            break
    if problem is None:
        return Verdict(step, True, what)
    return Verdict(step, False, f"{what}: {problem}",
                   "the core computes wrongly: a bitstream from other sources, a failing timing "
                   "constraint (see the build report's fmax_mhz) or a damaged board")


def _every_byte(device: Device, params: RillParams) -> Verdict:
    """All 256 byte values into the activation SRAM and, multiplied by the identity and
    requantized at scale 1, back out: through the link both ways and through every array row."""
    width = min(params.rows, params.cols)
    values = np.arange(-128, 128)
    acts = np.resize(values, (-(-256 // width), width))
    multiplier, shift = quantize_multiplier(1.0)
    prog = Program(params)
    prog.read_counters()
    prog.extend(gemm_program(params, acts, np.eye(width, dtype=np.int64),
                             rounding=Rounding.TFLITE, out_type=OutType.INT8,
                             qparams=([0] * width, [multiplier] * width, [shift & 0xFF] * width,
                                      [0] * width)))
    return _against_golden(device, params, "every byte value", prog,
                           "256 byte values in through LOAD_ACTS and out through STORE")


def _gemm(device: Device, params: RillParams, precision: Precision, rng) -> Verdict:
    m, k, n = 2 * params.rows + 3, 3 * params.k_per_tile(precision == Precision.INT4) - 1, \
        2 * params.cols + 1
    lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
    rounding = Rounding.ONNX if precision == Precision.INT8 else Rounding.TFLITE
    prog = Program(params)
    prog.read_counters()
    prog.extend(gemm_program(params, rng.integers(-128, 128, (m, k)),
                             rng.integers(lo, hi, (k, n)), precision=precision,
                             rounding=rounding, relu=True,
                             qparams=random_qparams(rng, n, rounding, k, per_channel=True)))
    return _against_golden(device, params, f"GEMM {precision.name}", prog,
                           f"{m}x{k}x{n}, {rounding.name.lower()} rounding, outputs and cycle "
                           "counters as the golden model's")


def _refusal(device: Device, params: RillParams) -> Verdict:
    prog = Program(params)
    prog.configure(Config())
    prog.append_refused(bytes([0x7F]) + bytes(isa.HEADER_BYTES - 1))
    prog.sync(tag=0x0BAD)
    return _against_golden(device, params, "refused command", prog,
                           "an unknown opcode answered UNKNOWN_OPCODE, and the device goes on")


def _link_errors(device: Device) -> Verdict:
    stats = getattr(getattr(device, "host", None), "stats", None)
    if stats is None:
        return Verdict("link errors", None, "this device has no framed link to count")
    host = {"timeouts": stats.timeouts, "bad frames": stats.bad_frames_received,
            "retransmissions": stats.retransmissions, "error replies": stats.error_replies}
    device = {"line errors": stats.device_line_errors,
              "rejected frames": stats.device_rejected_frames}
    detail = (f"over {stats.frames_sent} frames out and {stats.frames_received} back: host "
              + ", ".join(f"{v} {k}" for k, v in host.items()) + "; device "
              + ", ".join(f"{v} {k}" for k, v in device.items()))
    if any(host.values()) or any(device.values()):
        return Verdict("link errors", False, detail,
                       "errors counting up: a loose cable, noise, or a baud rate the clock "
                       "cannot make exactly; try a lower baud")
    return Verdict("link errors", True, detail)


def run_selftest(url: str, expected: RillParams | None = None, *,
                 device_params: RillParams | None = None, seed: int = 0,
                 options: dict[str, Any] | None = None) -> list[Verdict]:
    """The verdicts of every step on the device at ``url``. ``expected``: the params the host
    expects (None: whatever a board reports). ``device_params``: the params a ``golden`` or
    ``sim`` device is built with (default ``expected``), to rehearse a mismatch."""
    options = options or {}
    built = device_params or expected or RillParams()
    device, verdict = _link(url, built, options)
    verdicts = [verdict]
    steps = ("ISA and params", "every byte value", "GEMM INT8", "GEMM INT4", "refused command",
             "link errors")
    if device is None:
        return verdicts + [Verdict(step, None, "skipped: no link") for step in steps]
    with device:
        reported, verdict = _identity(device, expected or _reported_or(device, built, url))
        verdicts.append(verdict)
        if reported is None:
            return verdicts + [Verdict(step, None, "skipped: not a device this driver speaks to")
                               for step in steps[1:]]
        # The further steps compile for what the device is, so they still say whether it works.
        device.params = reported
        rng = np.random.default_rng(seed)
        verdicts += [_every_byte(device, reported), _gemm(device, reported, Precision.INT8, rng),
                     _gemm(device, reported, Precision.INT4, rng), _refusal(device, reported),
                     _link_errors(device)]
    return verdicts


def _reported_or(device: Device, built: RillParams, url: str) -> RillParams:
    """With no expectation, a board is expected to be what it reports; a model, what it was
    built as."""
    if not url.startswith(BOARD_URLS):
        return built
    try:
        return device.read_info()
    except DeviceError:
        return built
