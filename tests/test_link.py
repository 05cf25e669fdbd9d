"""The link protocol in Python: the host driver (``LinkHost``) against the device's half
(``LinkModel`` around the golden core), over clean, lossy and fuzzed pipes, and over a real TCP
socket through pyserial's ``socket://``.

The RTL side of the same tests is ``tests/test_link_rtl.py``.
"""

from __future__ import annotations

import random
import socket
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.params import SMALL_SHALLOW as PARAMS

from hw.link.protocol import (
    DeviceKind,
    HostFrame,
    HostKind,
    LinkStatus,
    pack_host_frame,
    parse_device_frame,
)
from hw.params import RillParams
from sim.link_cases import (
    assert_same,
    fault_strategy,
    fuzzed_exchange,
    golden_answer,
    random_program,
    refused_frames_through,
    state_probe,
)
from sw.cli import main as cli_main
from sw.device import DeviceError, ask_params, open_device
from sw.golden import GoldenCore
from sw.link import LinkHost, LinkTimeout, encode_frame
from sw.link_faults import FaultInjector, LossyTransport
from sw.link_model import LinkModel, LoopbackTransport
from sw.program import Program


def _programs(count: int, seed: int) -> list[Program]:
    rng = np.random.default_rng(seed)
    return [random_program(PARAMS, rng) for _ in range(count)] + [state_probe(PARAMS)]


def _run_all(host: LinkHost, programs: list[Program]):
    golden = GoldenCore(PARAMS)
    for i, prog in enumerate(programs):
        expected, ignore = golden_answer(golden, prog)
        assert_same(f"program {i}", host.exchange(prog.to_bytes(), len(expected)), expected,
                    ignore)


def test_clean_loopback_needs_no_retries():
    model = LinkModel(params=PARAMS, rsp_buffer=256)
    host = LinkHost(LoopbackTransport(model), ack_every=128)
    _run_all(host, _programs(10, seed=1))
    assert host.stats.retransmissions == host.stats.timeouts == host.stats.error_replies == 0
    assert model.statuses[LinkStatus.OK] == host.stats.frames_sent


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_lossy_pipe_still_gives_exact_answers(seed):
    model = LinkModel(params=PARAMS, rsp_buffer=256)
    lossy = LossyTransport(LoopbackTransport(model), random.Random(seed), p_lose=0.05,
                           p_duplicate=0.05, p_byte=0.0005)
    host = LinkHost(lossy, timeout=0, retries=30, ack_every=128)
    _run_all(host, _programs(10, seed=seed))
    assert lossy.damaged > 5
    assert host.stats.retransmissions + host.stats.resend_requests > 0


def test_replayed_frame_is_acknowledged_not_applied():
    """The same DATA frame three times: executed once, then answered DUPLICATE."""
    model = LinkModel(params=PARAMS)
    prog = Program(PARAMS)
    prog.info()
    wire = encode_frame(pack_host_frame(HostFrame(HostKind.DATA.value, 0, 7, 0,
                                                  prog.to_bytes())))
    replies = [parse_device_frame(_first_frame(model.receive(wire))) for _ in range(3)]
    assert [LinkStatus(r.status) for r in replies] == \
        [LinkStatus.OK, LinkStatus.DUPLICATE, LinkStatus.DUPLICATE]
    assert model.executed_frames == 1 and all(r.next_seq == 1 for r in replies)


def _frames(wire: bytes) -> list:
    from cobs import cobs
    return [parse_device_frame(cobs.decode(chunk)) for chunk in wire.split(b"\x00") if chunk]


def test_stream_frames_are_taken_silently_and_acknowledged_by_credit_news():
    """STREAM frames run without a reply; once the host's unreported credit reaches half the
    command buffer the device says so, and that frame's ``next_seq`` acknowledges them. A
    replayed STREAM frame is still answered DUPLICATE (its acknowledgement may have been lost)."""
    model = LinkModel(params=PARAMS, cmd_buffer=1024)
    prog = Program(PARAMS)
    prog.configure(prog.config)            # 12 bytes that answer nothing
    payload = prog.to_bytes() * 20         # 240 bytes
    answers = []
    for seq in range(4):
        frame = HostFrame(HostKind.STREAM.value, seq, seq, 0, payload)
        answers.append(_frames(model.receive(encode_frame(pack_host_frame(frame)))))
    assert model.executed_frames == 4
    assert answers[0] == []                              # 240 B unreported: quiet
    (news,) = answers[2] or answers[1]                   # >= 512 B unreported: news
    assert news.kind == DeviceKind.RESPONSE.value and news.credit == 1024
    assert news.next_seq in (2, 3)
    replay = HostFrame(HostKind.STREAM.value, 0, 9, 0, payload)
    (dup,) = _frames(model.receive(encode_frame(pack_host_frame(replay))))
    assert LinkStatus(dup.status) == LinkStatus.DUPLICATE and model.executed_frames == 4


def test_streaming_host_gets_one_device_frame_per_half_buffer():
    """A long command stream with no responses: the host sends all but its last frame as STREAM
    and hears back about once per half command buffer, not once per frame."""
    model = LinkModel(params=PARAMS)
    host = LinkHost(LoopbackTransport(model))
    before = host.stats.frames_received
    prog = Program(PARAMS)
    prog.load_weights(0, np.zeros((PARAMS.weight_depth, PARAMS.cols), np.uint8))
    commands = prog.to_bytes() * 40                       # ~20 KiB, no responses
    host.exchange(commands, 0)
    frames = host.stats.data_frames_sent
    assert frames >= 20 and model.statuses[LinkStatus.OK] >= frames
    assert host.stats.frames_received - before <= frames // 2 + 2


def test_frame_ahead_of_sequence_is_refused():
    model = LinkModel(params=PARAMS)
    wire = encode_frame(pack_host_frame(HostFrame(HostKind.DATA.value, 1, 0, 0, b"\x08" * 12)))
    reply = parse_device_frame(_first_frame(model.receive(wire)))
    assert LinkStatus(reply.status) == LinkStatus.OUT_OF_ORDER and model.executed_frames == 0


def _first_frame(wire: bytes) -> bytes:
    from cobs import cobs
    return cobs.decode(wire[:wire.index(0)])


def test_fuzzed_frames_never_hang_or_apply_twice():
    """Random programs while their host frames are damaged (garbage, truncated, corrupted, a byte
    dropped, replayed, lost) and device frames lost or damaged: at least 1,000 damaged frames.
    Every exchange returns the golden bytes; then garbage with no delimiter, a new connection, and a
    probe of every accumulator and counter (nothing applied twice, nothing written astray)."""
    model = LinkModel(params=PARAMS, rsp_buffer=256)
    injector = FaultInjector(LoopbackTransport(model), [])
    replies = LossyTransport(injector, random.Random(9), p_lose=0.03, p_duplicate=0.03,
                             p_byte=0.0005, writes=False)
    host, golden = LinkHost(replies, timeout=0, retries=30, ack_every=128), GoldenCore(PARAMS)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(st.integers(0, 2**32 - 1), st.lists(fault_strategy(), min_size=15, max_size=25))
    def example(program_seed, faults):
        fuzzed_exchange(host, injector, golden, PARAMS, program_seed, faults)

    example()
    injector.inner.write(bytes(random.Random(1).randrange(1, 256) for _ in range(700)))
    fresh = LinkHost(injector.inner, timeout=0, ack_every=128)
    prog = state_probe(PARAMS)
    expected, ignore = golden_answer(golden, prog)
    assert_same("state probe", fresh.exchange(prog.to_bytes(), len(expected)), expected, ignore)
    assert sum(injector.applied.values()) >= 1000, injector.applied
    assert {"garbage", "truncate", "corrupt", "drop", "replay", "lose"} <= set(injector.applied)


def test_the_host_learns_how_many_frames_the_device_refused():
    stats, spoiled = refused_frames_through(LoopbackTransport(LinkModel(params=PARAMS)), PARAMS,
                                            timeout=0)
    assert spoiled >= 4
    assert stats.device_rejected_frames == spoiled and stats.device_line_errors == 0, stats


def test_silent_device_is_a_timeout_that_says_what_to_check():
    class Silent:
        def write(self, data):
            pass

        def read(self, n, timeout):
            return b""

    with pytest.raises(LinkTimeout, match="baud rate"):
        LinkHost(Silent(), timeout=0, retries=2)


def test_golden_url_goes_through_the_link():
    with open_device("golden", PARAMS) as device:
        assert isinstance(device.host, LinkHost)
        # The INFO open_device sent has retired; the READ_COUNTERS reading them has not.
        assert device.read_counters()["instructions"] == 1


def test_socket_url_talks_to_a_device_on_tcp():
    """A TCP server with the golden device half behind it, reached as ``socket://``."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        model = LinkModel(params=PARAMS)
        with conn:
            while data := conn.recv(4096):
                conn.sendall(model.receive(data))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    prog = _programs(1, seed=5)[0]
    with open_device(f"socket://127.0.0.1:{port}", PARAMS) as device:
        # The golden model above ran the INFO that open_device sends too.
        golden = GoldenCore(PARAMS)
        info = Program(PARAMS)
        info.info()
        golden.feed(info.to_bytes())
        expected, ignore = golden_answer(golden, prog)
        assert_same("socket", device.execute(prog.to_bytes(), len(expected)), expected, ignore)
    thread.join(timeout=5)
    server.close()


def test_a_board_tells_the_driver_its_params(capsys):
    """Without --rows/--cols the driver compiles for the board's own params (INFO): its array,
    depths, serial requantizer and unregistered accumulators, as the iCEBreaker's bitstream has
    them."""
    board = RillParams(rows=2, cols=2, act_depth=256, weight_depth=512, acc_depth=256,
                       qparam_depth=64, serial_requant=True, deep_pipeline=False)
    server = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"

    def serve():   # a board: one connection after another, the core's state kept
        model = LinkModel(params=board)
        for _ in range(3):
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(model.receive(data))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ask_params(url) == board
    assert cli_main(["info", "--device", url]) == 0
    printed = capsys.readouterr().out
    words = " ".join(printed.split())
    for shown in ("serial_requant True", "deep_pipeline False", "rows 2",
                  "act_depth 256"):
        assert shown in words
    thread.join(timeout=5)
    server.close()


@pytest.mark.parametrize("url, message", [
    ("serial:///dev/does-not-exist?baud=3000000", "cannot open"),
    ("serial:///dev/ttyUSB0?speed=3", "unknown option"),
    ("socket://127.0.0.1", "HOST:PORT"),
])
def test_bad_urls_are_clear_errors(url, message):
    with pytest.raises(DeviceError, match=message):
        open_device(url, PARAMS)
