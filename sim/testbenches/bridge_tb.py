"""cocotb testbench serving the DUT's byte streams on a TCP socket (the co-simulation bridge).

``sim/bridge.py`` starts it and the host driver connects to it like to a board behind
``socket://``. The DUT is anything with ``cmd``/``rsp`` byte streams (``RillCore``). Environment:
``RILL_BRIDGE_PORT_FILE`` — where to write the port it listens on (127.0.0.1, chosen by the OS).

Simulated time only advances while there is work: when the DUT waits for a command byte
(``cmd.ready``), has no response byte to give and the host has sent nothing more, the testbench
blocks on the socket. The core is frozen in exactly that state, so no cycle is lost or invented.
"""

import os
import select
import socket
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.testbenches.common import reset_core


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

    await reset_core(dut, rsp_ready=1)

    inbox = bytearray()
    outbox = bytearray()
    offering = False
    waiting_for_input = False
    closed = False
    while not closed:
        # Socket I/O: non-blocking while the DUT is busy, blocking when it can only wait for us.
        if outbox:
            conn.setblocking(True)
            conn.sendall(outbox)
            conn.setblocking(False)
            outbox.clear()
        if not inbox and not offering and waiting_for_input:
            select.select([conn], [], [])
        try:
            chunk = conn.recv(65536)
            if chunk == b"":
                closed = True
            inbox += chunk
        except BlockingIOError:
            pass
        # Run cycles until the input is used up or the DUT has something to say.
        for _ in range(4096):
            await RisingEdge(dut.clk)
            if not offering and inbox:
                offering = True
            dut.cmd__valid.value = int(offering)
            dut.cmd__payload.value = inbox[0] if offering else 0
            await ReadOnly()
            ready = bool(dut.cmd__ready.value)
            offered = offering
            if offering and ready:
                del inbox[0]
                offering = False
            rsp_valid = bool(dut.rsp__valid.value)
            if rsp_valid:
                outbox.append(int(dut.rsp__payload.value))
            # Only a cycle in which nothing was offered shows the core really waiting for input.
            waiting_for_input = ready and not offered and not rsp_valid and not inbox
            if waiting_for_input or (outbox and not inbox):
                break
    conn.close()
