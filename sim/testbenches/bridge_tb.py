"""cocotb testbench serving the device's wire on a TCP socket (the co-simulation bridge).

``sim/bridge.py`` starts it; the host driver connects to it exactly as to a board behind
``socket://`` and speaks the link protocol to it. The DUT is a :class:`~hw.link.LinkedCore`:
``rx``/``tx`` byte streams (the wire, framed) and ``idle``. Environment: ``RILL_BRIDGE_PORT_FILE``
— where to write the port it listens on (127.0.0.1, chosen by the OS); ``RILL_BRIDGE_BATCH``, see
:data:`BATCH_CYCLES`.

Simulated time only advances while there is work: when the device is ``idle`` (the core waits
for commands, the link has nothing to send), its wire has been silent for a few cycles and the
host has sent nothing more, the testbench blocks on the socket. The core is frozen in exactly
that state (it counts no cycles while it waits for commands), so no cycle is lost or invented.
"""

import os
import select
import socket
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.testbenches.common import InputWriter, cycles_until_rise, reset_wire

#: Cycles of ``idle`` with the wire silent before the testbench waits for the host: the COBS
#: encoder may still be two cycles from presenting a frame's first byte when ``idle`` rises.
SETTLE_CYCLES = 8
#: Cycles simulated between looks at the socket while the device works (``RILL_BRIDGE_BATCH``
#: sets it: a test makes it small, so that batches end in every state).
BATCH_CYCLES = int(os.environ.get("RILL_BRIDGE_BATCH", "4096"))


@cocotb.test()
async def serve(dut):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port_file = Path(os.environ["RILL_BRIDGE_PORT_FILE"])
    port_file.write_text(str(server.getsockname()[1]))
    server.settimeout(float(os.environ.get("RILL_BRIDGE_ACCEPT_TIMEOUT", "120")))
    conn, _ = server.accept()
    server.close()
    conn.setblocking(False)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    await reset_wire(dut)

    clk, idle = dut.clk, dut.idle
    rx_valid, rx_payload, rx_ready = dut.rx__valid, dut.rx__payload, dut.rx__ready
    tx_valid, tx_payload = dut.tx__valid, dut.tx__payload
    drive = InputWriter()

    inbox = bytearray()
    outbox = bytearray()
    offering = False
    settled = 0      # consecutive cycles idle, wire silent, nothing offered
    closed = False
    while not closed:
        # Socket I/O: non-blocking while the device works, blocking when it can only wait for us.
        if outbox:
            conn.setblocking(True)
            conn.sendall(outbox)
            conn.setblocking(False)
            outbox.clear()
        if not inbox and not offering and settled >= SETTLE_CYCLES:
            select.select([conn], [], [])
        try:
            chunk = conn.recv(65536)
            if chunk == b"":
                closed = True
            inbox += chunk
        except BlockingIOError:
            pass
        # Run cycles until the input is used up and the device is quiet, or it has spoken.
        cycles = 0
        while cycles < BATCH_CYCLES:
            await RisingEdge(clk)
            cycles += 1
            if not offering and inbox:
                offering = True
            drive(rx_valid, int(offering))
            if offering:
                drive(rx_payload, inbox[0])
            await ReadOnly()
            offered = offering
            if offering and rx_ready.value:
                del inbox[0]
                offering = False
            sending = bool(tx_valid.value)
            budget = BATCH_CYCLES - cycles
            if budget > 1 and not sending and not offered and not inbox and not idle.value:
                # The device works with nothing on the wire either way (a MATMUL, say): sleep
                # until it speaks, goes idle, or the batch ends, on triggers rather than a
                # Python wake-up per cycle. tx.ready stays high, so a byte is taken in every
                # cycle tx.valid is seen high: the cycle it rises in is sampled here.
                cycles += await cycles_until_rise([tx_valid, idle], budget)
                await ReadOnly()
                sending = bool(tx_valid.value)
            if sending:
                outbox.append(int(tx_payload.value))
            quiet = bool(idle.value) and not sending and not offered and not inbox
            settled = settled + 1 if quiet else 0
            if settled >= SETTLE_CYCLES or (outbox and not inbox and not sending):
                break
    conn.close()
