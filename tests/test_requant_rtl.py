"""``hw.requant.RequantUnit`` and ``hw.requant_serial.SerialRequantUnit`` against the golden
arithmetic (``sw.requant``, itself checked against onnxruntime in ``tests/test_requant.py``), byte
for byte and cycle for cycle, in Amaranth's simulator."""

import numpy as np
from amaranth.hdl import EnableInserter, Module, Signal
from amaranth.sim import Simulator

from hw.cycles import SERIAL_REQUANT_CYCLES, requant_interval, requant_latency
from hw.isa import OutType, Rounding
from hw.params import RillParams
from hw.requant_serial import requantizer_class
from sim.requant_cases import (
    INT32_MAX,
    INT32_MIN,
    conversion_ties,
    high_product_near_ties,
    interesting_accs,
    product_ties,
)
from sw.requant import (
    output_bytes,
    raw_bytes,
    requantize,
)

# -- the gateware against the golden -------------------------------------------------------------

MODES = [(rounding, relu, out_type) for rounding in Rounding for relu in (False, True)
         for out_type in OutType]


def random_requests(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Requests that hit the edges on purpose: int32 extremes, every shift regime, all modes."""
    acc = interesting_accs(rng, size)
    bias = np.where(rng.random(size) < 0.7, rng.integers(-5000, 5000, size),
                    rng.integers(INT32_MIN, INT32_MAX + 1, size))
    rounding = rng.integers(0, 2, size)
    onnx_mode = rounding == Rounding.ONNX.value
    # ONNX: float32 mantissas, plus values a float never has (the low 24 bits are used).
    multiplier = np.where(onnx_mode, rng.integers(1 << 23, 1 << 24, size),
                          rng.integers(1 << 30, 1 << 31, size))
    odd = rng.random(size) < 0.15
    multiplier[odd] = rng.choice([0, 1, -1, (1 << 24) - 1, 1 << 23, INT32_MIN, INT32_MAX,
                                  -(1 << 30)], odd.sum())
    wild = rng.random(size) < 0.1
    multiplier[wild] = rng.integers(INT32_MIN, INT32_MAX + 1, wild.sum())
    # Shifts that keep outputs in range for this accumulator, plus edge and random values.
    bits = np.floor(np.log2(np.maximum(np.abs(acc + bias), 1))).astype(np.int64)
    fitting = np.where(onnx_mode, bits + 24 - rng.integers(0, 8, size),
                       -(bits - rng.integers(0, 8, size)))
    shift = np.where(onnx_mode, np.clip(fitting, 0, 255), np.clip(fitting, -128, 127))
    edge = rng.random(size) < 0.25
    shift[edge] = np.where(onnx_mode[edge],
                           rng.choice([0, 23, 31, 40, 63, 200, 255], edge.sum()),
                           rng.choice([0, 1, 31, 32, 127, -1, -31, -32, -128], edge.sum()))
    wild = rng.random(size) < 0.1
    shift[wild] = rng.integers(0, 256, wild.sum())
    zero_point = np.where(rng.random(size) < 0.8, rng.integers(-10, 10, size),
                          rng.integers(-(1 << 15), 1 << 15, size))

    # Unit scale (ONNX 2**23 * 2**-23; TFLITE 2**30 * 2**(1 - 31)): v = x, so acc = -zp + a bit
    # puts every zero point, however far out, right at the clamp, and v up to 2**15 and beyond
    # tests the saturation before the zero point is added.
    unit = rng.random(size) < 0.1
    n = unit.sum()
    zero_point[unit] = np.where(rng.random(n) < 0.5, rng.integers(-(1 << 15), 1 << 15, n),
                                rng.choice([-1, 1], n) * ((1 << 15) - rng.integers(0, 300, n)))
    acc[unit] = -zero_point[unit] + rng.integers(-300, 300, n)
    bias[unit] = 0
    multiplier[unit] = np.where(onnx_mode[unit], 1 << 23, 1 << 30)
    shift[unit] = np.where(onnx_mode[unit], 23, 1)

    # Near ties. ONNX: x a few units from (j + 1/2) * 2**s / m, where float32(x), the float32
    # product and the final rounding each decide the output. TFLITE: multipliers with few bits
    # set and small x, so both roundings meet exact halves.
    tie = (rng.random(size) < 0.25) & ~unit
    onnx_tie, tflite_tie = tie & onnx_mode, tie & ~onnx_mode
    n = onnx_tie.sum()
    mantissa = np.where(rng.random(n) < 0.3, 1 << 23, rng.integers(1 << 23, 1 << 24, n))
    exponent = rng.integers(20, 47, n)
    x = np.rint(np.ldexp((rng.integers(-130, 130, n) + 0.5) / mantissa, exponent))
    acc[onnx_tie] = np.clip(x + rng.integers(-3, 4, n), INT32_MIN, INT32_MAX).astype(np.int64)
    multiplier[onnx_tie] = mantissa
    shift[onnx_tie] = exponent
    product_tie = onnx_tie & (rng.random(size) < 0.4)
    acc[product_tie], multiplier[product_tie], shift[product_tie] = product_ties(
        rng, product_tie.sum())
    n = tflite_tie.sum()
    acc[tflite_tie] = rng.integers(-4096, 4096, n)
    multiplier[tflite_tie] = rng.choice([1 << 30, 3 << 29, 5 << 28, 7 << 28, -(1 << 30)], n)
    shift[tflite_tie] = rng.integers(-6, 2, n)
    hair = tflite_tie & (rng.random(size) < 0.3)
    acc[hair], multiplier[hair], shift[hair] = high_product_near_ties(rng, hair.sum())
    bias[tie] = 0
    zero_point[tie] = rng.integers(-10, 10, tie.sum())
    # float32(x) itself a tie that decides the output.
    conversion = onnx_tie & (rng.random(size) < 0.3) & ~product_tie
    acc[conversion], multiplier[conversion], shift[conversion], zero_point[conversion] = \
        conversion_ties(rng, conversion.sum())
    return {
        "acc": acc, "bias": bias, "multiplier": multiplier, "shift": shift & 0xFF,
        "zero_point": zero_point, "byte_index": rng.integers(0, 4, size),
        "rounding": rounding, "relu": rng.integers(0, 2, size),
        "out_type": rng.integers(0, len(OutType), size), "raw": rng.random(size) < 0.15,
    }


def expected_bytes(req: dict[str, np.ndarray], clamp=None) -> np.ndarray:
    """The golden byte of every request, each under its own mode (and ``clamp``, held)."""
    out = np.zeros(req["acc"].size, dtype=np.uint8)
    for rounding, relu, out_type in MODES:
        sel = ((req["rounding"] == rounding.value) & (req["relu"] == relu)
               & (req["out_type"] == out_type.value))
        values = requantize(req["acc"][sel], req["bias"][sel], req["multiplier"][sel],
                            req["shift"][sel], req["zero_point"][sel], rounding=rounding,
                            relu=relu, out_type=out_type, clamp=clamp)
        out[sel] = output_bytes(values, out_type)
    raw = raw_bytes(req["acc"], req["bias"]).reshape(-1, 4)
    index = np.arange(out.size)
    return np.where(req["raw"], raw[index, req["byte_index"]], out)


PIPELINED = RillParams()
SERIAL = RillParams(serial_requant=True)


def simulate(req: dict[str, np.ndarray], rng: np.random.Generator, *, idle: float = 0.1,
             stall: float = 0.0, params: RillParams = PIPELINED, clamp=None
             ) -> tuple[list[tuple[int, int]], list[int]]:
    """Stream the requests; returns ``(working cycle, byte)`` of every valid output, and the
    working cycle each request went in.

    Requests go in back to back with random idle cycles (``valid = 0`` over random payloads).
    Each request's multiplier and zero point follow it the unit's ``multiplier_delay`` and
    ``zero_point_delay`` working cycles later, as the core's qparam tile delivers them. With
    ``stall > 0`` the unit runs under an ``EnableInserter`` as in the core, and stalled cycles
    carry random garbage on every input. ``params`` picks the unit; the serial one gets its
    requests no closer than its interval, as the sequencer paces them. ``clamp``, ``(lo, hi)``, is
    held on the clamp inputs throughout (a CONFIG never changes it under a STORE).
    """
    dut = requantizer_class(params)()
    gap = requant_interval(params) - 1
    top, enable = dut, None
    if stall:
        enable = Signal(init=1)
        top = Module()
        top.submodules.requant = EnableInserter(enable)(dut)
    size = req["acc"].size
    schedule = []   # per real cycle: request index, -1 for idle, None for a stall
    issued = 0
    while issued < size:
        if stall and rng.random() < stall:
            schedule.append(None)
        elif rng.random() < idle:
            schedule.append(-1)
        else:
            schedule.append(issued)
            issued += 1
            schedule += [-1] * gap
    schedule += [-1] * (requant_latency(params) + 2)
    working = [index for index in schedule if index is not None]
    outputs = []

    def garbage():
        return {"acc": int(rng.integers(INT32_MIN, INT32_MAX + 1)),
                "bias": int(rng.integers(INT32_MIN, INT32_MAX + 1)),
                "multiplier": int(rng.integers(INT32_MIN, INT32_MAX + 1)),
                "shift": int(rng.integers(256)),
                "zero_point": int(rng.integers(-(1 << 15), 1 << 15)),
                "byte_index": int(rng.integers(4)), "rounding": int(rng.integers(2)),
                "relu": int(rng.integers(2)), "out_type": int(rng.integers(len(OutType))),
                "raw": int(rng.integers(2))}

    def late(field, w, delay):
        """``field`` of the request issued ``delay`` working cycles before working cycle ``w``."""
        earlier = working[w - delay] if w >= delay else -1
        return int(req[field][earlier]) if earlier >= 0 else garbage()[field]

    async def producer(ctx):
        w = 0
        for index in schedule:
            if enable is not None:
                ctx.set(enable, index is not None)
            # A stalled cycle may show anything, valid included; an idle one is valid = 0.
            valid = int(rng.integers(2)) if index is None else int(index >= 0)
            fields = garbage() if index is None or index < 0 else \
                {name: int(values[index]) for name, values in req.items()}
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, {name: fields[name] for name in (
                "acc", "bias", "shift", "byte_index")})
            if index is None:
                ctx.set(dut.multiplier, fields["multiplier"])
                ctx.set(dut.zero_point, fields["zero_point"])
            else:
                ctx.set(dut.multiplier, late("multiplier", w, dut.multiplier_delay))
                ctx.set(dut.zero_point, late("zero_point", w, dut.zero_point_delay))
                w += 1
            ctx.set(dut.rounding, Rounding(fields["rounding"]))
            ctx.set(dut.relu, fields["relu"])
            ctx.set(dut.out_type, OutType(fields["out_type"]))
            ctx.set(dut.raw, fields["raw"])
            if clamp is not None:
                ctx.set(dut.clamp, 1)
                ctx.set(dut.clamp_lo, clamp[0])
                ctx.set(dut.clamp_hi, clamp[1])
            await ctx.tick()

    async def monitor(ctx):
        working = 0
        for index in schedule:
            if index is not None:
                if ctx.get(dut.o.valid):
                    outputs.append((working, ctx.get(dut.o.payload)))
                working += 1
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run()
    # Working cycle of each request: its position among the non-stalled cycles.
    issue_cycles = [c for c, index in enumerate(i for i in schedule if i is not None) if index >= 0]
    return outputs, issue_cycles


def check(req, outputs, issue_cycles, params=PIPELINED, clamp=None):
    expected = expected_bytes(req, clamp)
    want = [(cycle + requant_latency(params), int(byte)) for cycle, byte in
            zip(issue_cycles, expected, strict=True)]
    assert len(outputs) == len(want), "one output per request, none for idle cycles"
    for n, (got, exp) in enumerate(zip(outputs, want, strict=True)):
        assert got == exp, (f"request {n}: got (cycle, byte) {got}, expected {exp}; "
                            + ", ".join(f"{k}={int(v[n])}" for k, v in req.items()))


def test_rtl_matches_golden_back_to_back():
    rng = np.random.default_rng(2024)
    req = random_requests(rng, 5000)
    check(req, *simulate(req, rng))


def test_rtl_clamps_to_a_programmable_range():
    """A clamp inside every output type's range at its low end, across INT4's at its high end;
    and one whose bounds cross (``lo > hi``: every output is ``hi``, as max-then-min gives)."""
    rng = np.random.default_rng(6)
    for clamp in ((-3, 100), (20, -5)):
        req = random_requests(rng, 800)
        check(req, *simulate(req, rng, clamp=clamp), clamp=clamp)


def test_rtl_freezes_under_enable_inserter():
    rng = np.random.default_rng(99)
    req = random_requests(rng, 300)
    check(req, *simulate(req, rng, idle=0.2, stall=0.3))


def test_serial_rtl_matches_golden():
    """The serial unit: every request a full schedule apart, some with idle cycles between (450
    requests, 136 cycles each in Amaranth's simulator; the RTL regressions' 2x2-serial core
    requantizes thousands more through it)."""
    assert requant_latency(SERIAL) == requant_interval(SERIAL) == SERIAL_REQUANT_CYCLES
    rng = np.random.default_rng(7)
    req = random_requests(rng, 450)
    check(req, *simulate(req, rng, params=SERIAL), params=SERIAL)


def test_serial_rtl_freezes_under_enable_inserter():
    rng = np.random.default_rng(8)
    req = random_requests(rng, 60)
    check(req, *simulate(req, rng, idle=0.2, stall=0.3, params=SERIAL), params=SERIAL)


def test_serial_rtl_clamps_to_a_programmable_range():
    rng = np.random.default_rng(9)
    req = random_requests(rng, 60)
    clamp = (-3, 100)
    check(req, *simulate(req, rng, params=SERIAL, clamp=clamp), params=SERIAL, clamp=clamp)
