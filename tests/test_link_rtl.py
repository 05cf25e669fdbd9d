"""The link gateware in front of the core (``hw.link.LinkedCore``) on Verilator, driven by the real
host driver (``sw.link.LinkHost``): from inside cocotb (``sim/testbenches/link_tb.py``, with the
device's tx stalled at random) and through the C++ harness in lockstep (``sim.lockstep``, where the
host's timeouts are simulated cycles, so lost frames cost no wall-clock time).

Every exchange is compared byte for byte with the golden model running the same programs; the
final state probe reads every accumulator and the counters, so a command applied twice or a write
outside its range shows up. The fuzz test sends at least 1,000 damaged host frames (garbage,
truncated, corrupted, a byte dropped, replayed, lost) and loses or damages device frames too.
"""

from __future__ import annotations

import json

from support.params import SMALL_SHALLOW as PARAMS

from hw.isa import Precision
from hw.link import LinkedCore
from sim.link_cases import fuzz_through, random_programs_through, refused_frames_through
from sim.lockstep import LockstepTransport, run_paced
from sim.runner import run_cocotb
from sw.bench_stream import StreamWorkload, measure_streaming

#: A small response ring, so the response path wraps and backs up the core during the tests.
RSP_BUFFER = 256


def _run(tmp_path, testcase: str, **settings) -> dict:
    report = tmp_path / "report.json"
    config = {"params": {f: getattr(PARAMS, f) for f in PARAMS.__dataclass_fields__},
              "report": str(report), "ack_every": RSP_BUFFER // 2, **settings}
    run_cocotb(lambda: LinkedCore(PARAMS, rsp_buffer=RSP_BUFFER), "rill_linked_core",
               "sim.testbenches.link_tb", testcase=testcase,
               extra_env={"RILL_LINK_TB": json.dumps(config)}, test_dir=tmp_path / "run",
               log_file=tmp_path / "run" / "sim.log", timeout=900)
    return json.loads(report.read_text())


def test_clean_link_runs_programs_exactly(tmp_path):
    """A clean pipe with a busy receiver: nothing is retransmitted, every byte matches."""
    stats = _run(tmp_path, "end_to_end", programs=6, seed=11, p_tx_busy=0.3)
    assert stats["retransmissions"] == 0 and stats["bad_frames_received"] == 0
    assert stats["command_bytes"] > 1000


def _host_options() -> dict:
    return {"timeout": 0.002, "retries": 12, "ack_every": RSP_BUFFER // 2}


def test_lossy_link_recovers():
    """Whole writes and reads lost or duplicated, bytes dropped, flipped and inserted both ways,
    at a UART's pace (a 10-cycle gap after each byte): the host retries and the answers are still
    exactly the golden model's. (At 0.2% damaged bytes a 270-byte response frame arrives whole
    only one time in five; the host gets through, but needs more than the default 12 retries.)"""
    with LockstepTransport(PARAMS, rx_gap=3, link_options={"rsp_buffer": RSP_BUFFER}) as wire:
        stats, damaged = random_programs_through(
            wire, PARAMS, seed_value=12, programs=8,
            lossy={"p_lose": 0.04, "p_duplicate": 0.04, "p_byte": 0.0005}, **_host_options())
    assert damaged > 10, stats
    assert stats.retransmissions + stats.resend_requests > 0, stats


def test_fuzzed_frames_never_hang_or_apply_twice():
    """≥ 1,000 fuzzed host frames over random programs, then garbage with no delimiter and a new
    connection whose state probe must equal the golden model's."""
    with LockstepTransport(PARAMS, link_options={"rsp_buffer": RSP_BUFFER}) as wire:
        _stats, faults = fuzz_through(wire, PARAMS, seed_value=13, examples=230,
                                      faults_per_example=(15, 25), **_host_options())
    assert sum(faults.values()) >= 1000, faults
    assert {"garbage", "truncate", "corrupt", "drop", "replay", "lose"} <= set(faults)


def test_the_host_learns_how_many_frames_the_device_refused():
    """The gateware counts refused host frames in the flags of its frames (a wrapping count the
    host adds up): exactly the garbage and cut frames sent."""
    with LockstepTransport(PARAMS, link_options={"rsp_buffer": RSP_BUFFER}) as wire:
        stats, spoiled = refused_frames_through(wire, PARAMS, **_host_options())
    assert spoiled >= 4
    assert stats.device_rejected_frames == spoiled and stats.device_line_errors == 0, stats


def test_paced_stream_is_exact_and_paced():
    """``python -m sw bench``'s end-to-end measurement, small: a compiled 16-row layer through
    the RTL over a wire of 16 cycles per byte. The testbench checks every response byte against
    the golden model; here the device's cycle count must equal the prediction and no byte may
    have come faster than the wire allows."""
    rows = measure_streaming(PARAMS, run_paced, cycles_per_byte=16,
                             workloads=[StreamWorkload(16, 16, 12, Precision.INT8)])
    (row,) = rows
    assert row.device_cycles == row.predicted_device_cycles
    assert row.cycles >= (row.wire_bytes_received - 1) * 16
    assert row.compulsory_bytes == 16 * 12 + 4 * 12 + 16 * 16 + 16 * 12   # W, bias, A, Y
    assert 1 < row.wire_ratio < 3 and 0 < row.end_to_end_efficiency <= 1
