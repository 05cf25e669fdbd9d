"""The link's gateware blocks in the Amaranth simulator: CRC-32 against zlib, the COBS encoder and
decoder against the ``cobs`` package, the command buffer's commit and rollback.

Every stream test runs with random idle cycles on the source and random backpressure on the sink.
"""

import random
import struct
import zlib

import pytest
from amaranth.sim import Simulator
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw.link import CobsDecoder, CobsEncoder, CommitFifo, Crc32, LinkTransmitter
from hw.link.protocol import (
    CRC_RESIDUE,
    DEVICE_HEADER_BYTES,
    DEVICE_HEADER_FORMAT,
    QUIET_CYCLES,
    DeviceFlags,
    seal,
)

SIM_SETTINGS = settings(max_examples=25, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow,
                                               HealthCheck.large_base_example])
#: Cycles a consumer waits for its items before it calls the block hung.
PATIENCE = 20_000


def simulate(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in testbenches:
        sim.add_testbench(bench)
    sim.run()


async def send(ctx, port, items, rng, p_idle):
    """Producer: offer each item; idle cycles between them at random."""
    for item in items:
        while rng.random() < p_idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, item)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def collect(ctx, port, count, rng, p_busy, out):
    """Consumer: records ``count`` payloads, not ready at random."""
    for _ in range(PATIENCE):
        if len(out) >= count:
            break
        ctx.set(port.ready, rng.random() >= p_busy)
        _, _, valid, ready, payload = await ctx.tick().sample(port.valid, port.ready,
                                                             port.payload)
        if valid and ready:
            out.append(payload)
    ctx.set(port.ready, 0)
    assert len(out) >= count, f"hung after {len(out)} of {count} items"


# -- CRC-32 -------------------------------------------------------------------------------------

@SIM_SETTINGS
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4),
       st.integers(0, 2**32).map(random.Random))
def test_crc32_matches_zlib(messages, rng):
    dut = Crc32()
    results = []

    async def bench(ctx):
        for message in messages:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for byte in seal(message):
                while rng.random() < 0.2:
                    ctx.set(dut.data.valid, 0)
                    await ctx.tick()
                ctx.set(dut.data.valid, 1)
                ctx.set(dut.data.payload, byte)
                await ctx.tick()
            ctx.set(dut.data.valid, 0)
            # Before the CRC bytes the value is zlib's; after them the residue is constant.
            results.append((ctx.get(dut.value), ctx.get(dut.residue_ok)))

    simulate(dut, bench)
    assert [r[1] for r in results] == [1] * len(messages)
    assert [r[0] for r in results] == [zlib.crc32(seal(m)) for m in messages]
    assert {zlib.crc32(seal(m)) for m in messages} == {CRC_RESIDUE}


def test_crc32_value_before_the_crc_bytes():
    dut = Crc32()
    message = b"123456789"

    async def bench(ctx):
        for byte in message:
            ctx.set(dut.data.valid, 1)
            ctx.set(dut.data.payload, byte)
            await ctx.tick()
        ctx.set(dut.data.valid, 0)
        assert ctx.get(dut.value) == zlib.crc32(message) == 0xCBF43926
        assert not ctx.get(dut.residue_ok)

    simulate(dut, bench)


# -- COBS ---------------------------------------------------------------------------------------

# Frames rich in the cases COBS cares about: zeros, runs of 254 non-zero bytes, frame ends.
frame_bytes = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.lists(st.sampled_from([0, 1, 0xFF]), min_size=1, max_size=600).map(bytes),
    st.tuples(st.integers(250, 520), st.sampled_from([b"", b"\x00", b"\x05", b"\x00\x00"])).map(
        lambda t: bytes([7]) * t[0] + t[1]),
)


@SIM_SETTINGS
@given(st.lists(frame_bytes, min_size=1, max_size=3), st.integers(0, 2**32).map(random.Random),
       st.sampled_from([0.0, 0.3]), st.sampled_from([0.0, 0.5]))
def test_cobs_encoder_matches_the_package(frames, rng, p_idle, p_busy):
    dut = CobsEncoder()
    expected = b"".join(cobs.encode(f) + b"\x00" for f in frames)
    items = [{"data": b, "last": int(i == len(f) - 1)} for f in frames for i, b in enumerate(f)]
    out = []

    async def producer(ctx):
        await send(ctx, dut.i, items, rng, p_idle)

    async def consumer(ctx):
        await collect(ctx, dut.o, len(expected), rng, p_busy, out)

    simulate(dut, producer, consumer)
    assert bytes(out) == expected


@SIM_SETTINGS
@given(st.lists(st.one_of(frame_bytes.map(lambda f: cobs.encode(f) + b"\x00"),
                          st.binary(min_size=1, max_size=30)),   # garbage, broken frames
                min_size=1, max_size=4),
       st.integers(0, 2**32).map(random.Random), st.sampled_from([0.0, 0.3]),
       st.sampled_from([0.0, 0.5]))
def test_cobs_decoder_matches_the_package(chunks, rng, p_idle, p_busy):
    wire = b"".join(chunks) + b"\x00"
    expected = []   # (decoded bytes, broken) per non-empty frame
    for raw in wire.split(b"\x00")[:-1]:
        if not raw:
            continue
        try:
            expected.append((cobs.decode(raw), False))
        except cobs.DecodeError:
            expected.append((None, True))
    dut = CobsDecoder()
    tokens = []

    async def producer(ctx):
        await send(ctx, dut.i, list(wire), rng, p_idle)

    async def consumer(ctx):
        for _ in range(PATIENCE):
            if sum(1 for t in tokens if t.end) == len(expected):
                break
            ctx.set(dut.o.ready, rng.random() >= p_busy)
            _, _, valid, ready, payload = await ctx.tick().sample(dut.o.valid, dut.o.ready,
                                                                 dut.o.payload)
            if valid and ready:
                tokens.append(payload)

    simulate(dut, producer, consumer)
    frames, current = [], bytearray()
    for token in tokens:
        if token.end:
            frames.append((None, True) if token.error else (bytes(current), False))
            current = bytearray()
        else:
            current.append(token.data)
    # A broken frame must be flagged; the package also rejects nothing the decoder accepts.
    assert frames == expected


# -- command buffer -----------------------------------------------------------------------------

@SIM_SETTINGS
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.booleans()), min_size=1,
                max_size=12),
       st.integers(0, 2**32).map(random.Random), st.sampled_from([0.0, 0.6]))
def test_commit_fifo_passes_committed_frames_only(frames, rng, p_busy):
    depth = 64
    dut = CommitFifo(depth)
    out, committed, free_after = [], [], []

    async def writer(ctx):
        for data, good in frames:
            fitted = True
            for byte in data:
                ctx.set(dut.w.valid, 1)
                ctx.set(dut.w.payload, byte)
                _, _, ready = await ctx.tick().sample(dut.w.ready)
                fitted &= bool(ready)   # full: the link would answer NO_SPACE
            ctx.set(dut.w.valid, 0)
            commit = good and fitted
            ctx.set(dut.commit if commit else dut.rollback, 1)
            await ctx.tick()
            ctx.set(dut.commit, 0)
            ctx.set(dut.rollback, 0)
            if commit:
                committed.append(data)
            free_after.append(ctx.get(dut.free))

    async def reader(ctx):
        for _ in range(60 * sum(len(d) for d, _ in frames) + 200):
            ctx.set(dut.r.ready, rng.random() >= p_busy)
            _, _, valid, ready, payload = await ctx.tick().sample(dut.r.valid, dut.r.ready,
                                                                 dut.r.payload)
            if valid and ready:
                out.append(payload)
        assert ctx.get(dut.empty)

    simulate(dut, writer, reader)
    assert bytes(out) == b"".join(committed)
    assert all(0 <= f <= depth for f in free_after)
    if p_busy == 0.0:
        assert committed == [d for d, g in frames if g]   # a fast reader never fills it


# -- the transmitter's IDLE flag -----------------------------------------------------------------

@pytest.mark.parametrize("gap", range(QUIET_CYCLES - 2, QUIET_CYCLES + 5))
def test_an_idle_frame_carries_the_last_response_byte(gap):
    """The core's last response byte arrives ``gap`` cycles after the others, around the cycle
    the quiet timer decides a frame (its size fixed a cycle before it starts). A frame that
    says IDLE (nothing more is coming) must carry every byte the ring has taken: the host stops
    reading there, and a byte left behind it would never be asked for."""
    dut = LinkTransmitter(rsp_depth=64, cmd_depth=32)
    responses, frames = [0x11, 0x22, 0x33, 0x44], []

    async def core(ctx):
        ctx.set(dut.credit, 32)   # an empty command buffer, as the host believes it
        for i, byte in enumerate(responses):
            if i == len(responses) - 1:
                await ctx.tick().repeat(gap)
            ctx.set(dut.rsp.valid, 1)
            ctx.set(dut.rsp.payload, byte)
            await ctx.tick().until(dut.rsp.ready)
            ctx.set(dut.rsp.valid, 0)
        ctx.set(dut.core_idle, 1)   # waiting for commands, nothing more to say

    async def host(ctx):
        ctx.set(dut.o.ready, 1)
        frame = []
        for _ in range(400):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                frame.append(payload.data)
                if payload.last:
                    frames.append(bytes(frame))
                    frame = []

    simulate(dut, core, host)
    carried, idle_at = [], None
    for frame in frames:
        header = struct.unpack(DEVICE_HEADER_FORMAT, frame[:DEVICE_HEADER_BYTES])
        payload = frame[DEVICE_HEADER_BYTES:-4]
        assert idle_at is None or not payload, \
            f"a frame said IDLE with {idle_at} bytes sent; {len(payload)} more came after it"
        carried += payload
        if header[5] & DeviceFlags.IDLE.value:
            idle_at = len(carried)
    assert carried == responses and idle_at == len(responses)
