"""cocotb testbench for ``RillCore``: streams command bytes in, collects response bytes.

Not collected by pytest: ``tests/test_core_rtl.py`` launches it through
``sim.core_rtl.run_case_file``. The case list comes from the JSON file named by
``RILL_TB_CASES``: each case names a program file to send, a file to write the received bytes
to, optionally the expected bytes (from the golden model) with byte offsets to ignore (the
``stalls`` counter, which depends on the backpressure), and the probabilities of an idle cycle
on the input and of not-ready on the output.
Cases run in order on one device, so state carries over exactly as it does in the golden model.
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.testbenches.byte_exchange import ByteExchange
from sim.testbenches.common import InputWriter, reset_core


async def run_case(dut, case, rng):
    program = Path(case["program"]).read_bytes()
    expected_len = case["response_bytes"]
    timeout = case.get("timeout_cycles", 200 * (len(program) + expected_len) + 10_000)
    exchange = ByteExchange(program, expected_len, rng.random, case.get("idle_in", 0.0),
                            case.get("busy_out", 0.0))
    clk, drive = dut.clk, InputWriter()
    cmd_valid, cmd_payload, cmd_ready = dut.cmd__valid, dut.cmd__payload, dut.cmd__ready
    rsp_valid, rsp_payload, rsp_ready = dut.rsp__valid, dut.rsp__payload, dut.rsp__ready
    for _ in range(timeout):
        await RisingEdge(clk)
        valid, payload, ready = exchange.drive()
        drive(cmd_valid, valid)
        if valid:
            drive(cmd_payload, payload)
        drive(rsp_ready, ready)
        await ReadOnly()
        exchange.sample(cmd_ready.value, rsp_valid.value, lambda: rsp_payload.value)
        if exchange.done:
            break
    else:
        raise AssertionError(f"{case['name']}: {exchange.hung(timeout)}")
    received = exchange.received
    await RisingEdge(dut.clk)
    dut.cmd__valid.value = 0
    Path(case["received"]).write_bytes(received)
    if "expected" in case:
        expected = Path(case["expected"]).read_bytes()
        ignore = set(case.get("ignore", ()))
        mismatches = [i for i in range(max(len(expected), len(received)))
                      if i not in ignore and (i >= len(expected) or i >= len(received)
                                              or expected[i] != received[i])]
        assert not mismatches, (
            f"{case['name']}: {len(mismatches)} byte(s) differ from the golden model, first at "
            f"offset {mismatches[0]}: expected {expected[mismatches[0]:mismatches[0] + 8].hex()} "
            f"got {received[mismatches[0]:mismatches[0] + 8].hex()}")


@cocotb.test()
async def run_cases(dut):
    cases = json.loads(Path(os.environ["RILL_TB_CASES"]).read_text())
    rng = random.Random(cases["seed"])
    await reset_core(dut, rsp_ready=0)
    for case in cases["cases"]:
        await run_case(dut, case, rng)
