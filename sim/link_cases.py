"""Programs, faults and checks for the link tests, shared by the cocotb testbench
(``sim/testbenches/link_tb.py``), the tests on the C++ harness in lockstep
(``tests/test_link_rtl.py``) and the golden-model tests (``tests/test_link.py``).

:func:`random_programs_through` and :func:`fuzz_through` are whole link tests written against a
byte transport, so the same test runs wherever a transport reaches the RTL."""

from __future__ import annotations

import random
from collections import deque

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from hw import isa
from hw.isa import Opcode
from hw.params import RillParams
from sim.cases import bad_input_program, random_gemm_program
from sw.golden import GoldenCore
from sw.link import LinkHost, LinkStats
from sw.link_faults import Fault, FaultInjector, LossyTransport
from sw.program import Program, gemm_program

__all__ = ["fault_strategy", "accumulate_program", "random_program", "state_probe",
           "golden_answer", "assert_same", "fuzzed_exchange", "random_programs_through",
           "fuzz_through", "refused_frames_through"]


def fault_strategy():
    """One fuzzed host frame: garbage, truncated, corrupted, a byte dropped, an old DATA frame
    replayed (its seq long done), or a frame lost."""
    return st.one_of(
        st.builds(Fault, st.just("garbage"), st.just(0), st.binary(min_size=1, max_size=40)),
        st.builds(Fault, st.just("truncate"), st.integers(0, 300)),
        st.builds(Fault, st.just("corrupt"), st.integers(0, 300),
                  st.integers(1, 255).map(lambda x: bytes([x]))),
        st.builds(Fault, st.just("drop"), st.integers(0, 300)),
        st.builds(Fault, st.just("replay"), st.integers(0, 40)),
        st.builds(Fault, st.just("lose")),
        st.just(Fault("none")),
    )


# -- programs and their golden answers ------------------------------------------------------------

def accumulate_program(params: RillParams, rng: np.random.Generator) -> Program:
    """A GEMM, then the same MATMUL again accumulating: any repeated MATMUL or lost LOAD changes
    the raw accumulators it stores, any repeated instruction the instruction counter."""
    m, k, n = (int(rng.integers(1, x)) for x in (12, 3 * params.rows, 3 * params.cols))
    acts = rng.integers(-128, 128, (m, k))
    weights = rng.integers(-128, 128, (k, n))
    prog = gemm_program(params, acts, weights, raw=True, counters=False)
    prog.matmul(0, 0, 0, m, -(-k // params.rows), -(-n // params.cols), accumulate=True)
    prog.store(0, m, n, 0, raw=True)
    prog.read_counters()
    return prog


def random_program(params: RillParams, rng: np.random.Generator) -> Program:
    choice = rng.random()
    if choice < 0.1:
        return bad_input_program(params)
    if choice < 0.4:
        return accumulate_program(params, rng)
    return random_gemm_program(params, rng, max_m=24, max_k=3 * params.rows + 3,
                               max_n=3 * params.cols + 1)


def state_probe(params: RillParams) -> Program:
    """Every accumulator (raw, through channel 0's bias) and the counters: a device that wrote
    anywhere it should not have, or ran anything twice, differs here."""
    prog = Program(params)
    prog.store(0, params.acc_depth, params.cols, 0, raw=True)
    prog.info()
    prog.read_counters()
    return prog


def golden_answer(golden: GoldenCore, prog: Program) -> tuple[bytes, set[int]]:
    """The golden model's response to ``prog`` and the offsets of its ``stalls`` counter bytes
    (the one value that depends on the link's pace)."""
    out, ignore = bytearray(), set()
    stalls_at = 4 * isa.COUNTER_NAMES.index("stalls")
    for chunk in prog.chunks:
        response = golden.feed(chunk)
        if chunk[0] == Opcode.READ_COUNTERS.value and response[:1] == b"\x00":
            base = len(out) + isa.RESPONSE_HEADER_BYTES + stalls_at
            ignore.update(range(base, base + 4))
        out += response
    return bytes(out), ignore


def assert_same(name: str, got: bytes, expected: bytes, ignore: set[int]):
    assert len(got) == len(expected), f"{name}: {len(got)} bytes, expected {len(expected)}"
    bad = [i for i in range(len(expected)) if i not in ignore and got[i] != expected[i]]
    assert not bad, (f"{name}: {len(bad)} byte(s) differ from the golden model, first at "
                     f"{bad[0]}: got {got[bad[0]:bad[0] + 8].hex()}, expected "
                     f"{expected[bad[0]:bad[0] + 8].hex()}")


def fuzzed_exchange(host, injector, golden: GoldenCore, params: RillParams, program_seed: int,
                    faults) -> None:
    """One random program through ``host`` while ``injector`` (a
    :class:`~sw.link_faults.FaultInjector` under it) damages its frames by ``faults``; the answer
    must be the golden model's."""
    prog = random_program(params, np.random.default_rng(program_seed))
    expected, ignore = golden_answer(golden, prog)
    injector.faults = deque(faults)
    got = host.exchange(prog.to_bytes(), len(expected))
    injector.faults.clear()
    assert_same(f"program seed {program_seed}", got, expected, ignore)


# -- whole link tests over any transport ----------------------------------------------------------

def random_programs_through(transport, params: RillParams, *, seed_value: int, programs: int,
                            lossy: dict | None = None, **host_options) -> tuple[LinkStats, int]:
    """Random programs and a final state probe through a :class:`LinkHost` on ``transport``
    (over a :class:`LossyTransport` with ``lossy``'s keywords, if given); every answer must be
    the golden model's. Returns the host's stats and how many writes or reads were damaged."""
    rng = random.Random(seed_value)
    if lossy:
        transport = LossyTransport(transport, random.Random(rng.random()), **lossy)
    golden = GoldenCore(params)
    prog_rng = np.random.default_rng(seed_value)
    host = LinkHost(transport, **host_options)
    for i, prog in enumerate([*(random_program(params, prog_rng) for _ in range(programs)),
                              state_probe(params)]):
        expected, ignore = golden_answer(golden, prog)
        assert_same(f"program {i}", host.exchange(prog.to_bytes(), len(expected)), expected,
                    ignore)
    return host.stats, getattr(transport, "damaged", 0)


def fuzz_through(transport, params: RillParams, *, seed_value: int, examples: int,
                 faults_per_example: tuple[int, int], **host_options
                 ) -> tuple[LinkStats, dict[str, int]]:
    """Hypothesis fuzzes the host's frames (:func:`fault_strategy`) while random programs run
    and device frames are lost or damaged; every exchange must return the golden bytes. Then
    garbage with no delimiter, and a new connection's state probe must equal the golden model's
    (no hang, nothing applied twice). Returns the host's stats and the faults applied, by kind."""
    rng = random.Random(seed_value)
    injector = FaultInjector(transport, [])
    reply_loss = LossyTransport(injector, random.Random(rng.random()), p_lose=0.03,
                                p_duplicate=0.03, p_byte=0.0005, writes=False)
    golden = GoldenCore(params)
    host = LinkHost(reply_loss, **host_options)
    lo, hi = faults_per_example

    @seed(seed_value)
    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 2**32 - 1), st.lists(fault_strategy(), min_size=lo, max_size=hi))
    def example(program_seed, faults):
        fuzzed_exchange(host, injector, golden, params, program_seed, faults)

    example()
    transport.write(bytes(rng.randrange(1, 256) for _ in range(700)))
    fresh = LinkHost(transport, **host_options)
    prog = state_probe(params)
    expected, ignore = golden_answer(golden, prog)
    assert_same("state probe", fresh.exchange(prog.to_bytes(), len(expected)), expected, ignore)
    return host.stats, injector.applied


def refused_frames_through(transport, params: RillParams, *, programs: int = 4,
                           **host_options) -> tuple[LinkStats, int]:
    """Programs whose host frames are preceded by garbage or cut short now and then: the device
    refuses each such frame and counts it in its frames' flags, the host adds the counts up, and
    the answers are still the golden model's. Returns the host's stats and the frames spoiled
    (the connection's SYNC goes out whole: the count starts from its reply)."""
    spoil = [Fault("garbage", data=b"\x05noise"), Fault("none"), Fault("truncate", at=3),
             Fault("garbage", data=bytes(range(1, 60)))]
    injector = FaultInjector(transport, [Fault("none")] + spoil * 8)
    host, golden = LinkHost(injector, **host_options), GoldenCore(params)
    rng = np.random.default_rng(5)
    for number in range(programs):
        prog = accumulate_program(params, rng)
        expected, ignore = golden_answer(golden, prog)
        assert_same(f"program {number}", host.exchange(prog.to_bytes(), len(expected)),
                    expected, ignore)
    return host.stats, injector.applied.get("garbage", 0) + injector.applied.get("truncate", 0)
