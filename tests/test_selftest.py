"""The bring-up self-test (python -m sw selftest) on golden and sim, and its diagnoses: a device
built with other params, another ISA version, a core that computes wrongly, a socket nobody
answers and one that never speaks."""

import socket
import subprocess
import sys
import threading

import pytest
from support.params import SMALL

from hw import isa
from hw.params import RillParams
from sw import selftest
from sw.golden import GoldenCore
from sw.link import LinkedDevice
from sw.link_faults import Fault, FaultInjector
from sw.link_model import LinkModel, LoopbackTransport
from sw.selftest import run_selftest

STEPS = ["link", "ISA and params", "every byte value", "GEMM INT8", "GEMM INT4",
         "refused command", "link errors"]


def _summary(verdicts):
    return [(v.step, v.ok) for v in verdicts]


@pytest.mark.parametrize("url", ["golden", "sim"])
def test_a_working_device_passes_every_step(url):
    verdicts = run_selftest(url, SMALL)
    assert _summary(verdicts) == [(step, True) for step in STEPS]


def test_a_device_built_with_other_params_is_named_and_still_checked():
    verdicts = run_selftest("sim", RillParams(), device_params=SMALL)
    identity = verdicts[1]
    assert identity.ok is False and "rows 4 (expected 8)" in identity.detail
    assert "built with other params" in identity.cause
    # The rest runs for what the device is.
    assert all(v.ok for v in verdicts[2:])


def _serving(core, monkeypatch):
    """Make ``golden`` open a device around ``core`` (a golden model with a fault)."""
    def open_device(url, params, check=True, **options):
        return LinkedDevice(params, LoopbackTransport(LinkModel(core)))
    monkeypatch.setattr(selftest, "open_device", open_device)


class _OffByOne(GoldenCore):
    """A core whose requantized outputs are one too high."""

    def _store(self, **fields):
        payload = super()._store(**fields)
        if payload is None or fields["flags"] & isa.StoreFlags.RAW.value:
            return payload
        return bytes((b + 1) & 0xFF for b in payload)


#: The older ISA a device may still speak: v6, whose INFO lanes byte is the store lanes alone.
OLD_ISA = 6


class _OldIsa(GoldenCore):
    """A core whose INFO is ISA v6's: its version, and its lanes byte the store lanes."""
    def _run(self, opcode, f, data):
        payload = super()._run(opcode, f, data)
        if opcode == isa.Opcode.INFO:   # the version byte follows the magic; the lanes byte is
            at = len(RillParams.INFO_MAGIC)   # after rows, cols and the feature bits
            payload = (payload[:at] + bytes([OLD_ISA]) + payload[at + 1:at + 4]
                       + bytes([self.params.store_lanes]) + payload[at + 5:])
        return payload


def test_a_core_that_computes_wrongly_fails_the_arithmetic_steps(monkeypatch):
    _serving(_OffByOne(SMALL), monkeypatch)
    verdicts = run_selftest("golden", SMALL)
    assert _summary(verdicts)[:2] == [("link", True), ("ISA and params", True)]
    byte_step = verdicts[2]
    assert byte_step.ok is False and "payload differs" in byte_step.detail
    assert "computes wrongly" in byte_step.cause
    assert verdicts[3].ok is False and verdicts[5].ok is True   # no STORE in the refusal step


def test_frames_the_device_refused_fail_the_link_step(monkeypatch):
    """Garbage on the line before one host frame: the device refuses it, says so in its frames'
    flags, and the last step names the count and the likely cause."""
    def open_device(url, params, check=True, **options):
        faults = [Fault("none")] * 3 + [Fault("garbage", data=b"\x05noise")]
        return LinkedDevice(params, FaultInjector(LoopbackTransport(LinkModel(params=params)),
                                                  faults))
    monkeypatch.setattr(selftest, "open_device", open_device)
    verdicts = run_selftest("golden", SMALL)
    assert all(v.ok for v in verdicts[:-1]), verdicts
    link_errors = verdicts[-1]
    assert link_errors.ok is False and "device 0 line errors, 1 rejected frames" in \
        link_errors.detail
    assert "loose cable" in link_errors.cause


def test_another_isa_version_stops_the_checks(monkeypatch):
    _serving(_OldIsa(SMALL), monkeypatch)
    verdicts = run_selftest("golden", SMALL)
    assert verdicts[1].ok is False and f"v{OLD_ISA}" in verdicts[1].detail
    assert "rebuild the bitstream" in verdicts[1].cause
    assert {v.ok for v in verdicts[2:]} == {None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_socket_nobody_answers():
    verdicts = run_selftest(f"socket://127.0.0.1:{_free_port()}", SMALL)
    assert verdicts[0].ok is False and "nothing listens there" in verdicts[0].cause
    assert {v.ok for v in verdicts[1:]} == {None}


def test_a_device_that_never_speaks():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        verdicts = run_selftest(f"socket://127.0.0.1:{server.getsockname()[1]}", SMALL)
    finally:
        server.close()
    assert verdicts[0].ok is False and "did not answer" in verdicts[0].detail
    assert "wrong port or baud rate" in verdicts[0].cause


def test_cli_prints_a_verdict_per_step_and_fails_with_a_failure():
    run = [sys.executable, "-m", "sw", "--rows", "4", "--cols", "4", "selftest", "--device",
           "golden"]
    result = subprocess.run(run, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:8]] == ["pass"] * 7
    assert lines[-1] == "7 passed, 0 failed"
    result = subprocess.run([sys.executable, "-m", "sw", "--board-params", "icebreaker",
                             "selftest", "--device", f"socket://127.0.0.1:{_free_port()}"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "FAIL  link" in result.stdout and result.stdout.endswith("0 passed, 1 failed, "
                                                                    "6 skipped\n")
