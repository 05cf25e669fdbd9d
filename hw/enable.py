"""How the core's freeze reaches its registers: decided ahead, then copied through a register tree.

The core freezes (no working cycle) while its response path has no room. One net cannot reach
the clock enables of every flip-flop of a large array at 100 MHz (on the ECP5, routing to ~10,000
of them takes well over a cycle), so every block, every array row and
every PE runs under a register of its own, and those registers are fed through a tree: the
decision is taken :func:`enable_lead` cycles before the cycle it governs.

Deciding that early can no longer use whether a response byte will be waiting then, so on the
deep core the decision is the response FIFO's level alone: with ``lead`` cycles between the level
register and the enables, at most ``lead`` bytes can enter meanwhile (one per cycle), so a level
of at most ``depth - 1 - lead`` guarantees room for one more in the governed cycle. Stalling
early costs nothing the compiler sees (the ISA counts working cycles) and the FIFO is two bytes
deeper than ``lead`` so a host reading every cycle (level 1) never stalls the core. The shallow
core (the iCE40, where every flip-flop takes a logic cell) decides a cycle ahead, exactly, from
the sequencer's next ``rsp.valid`` and a two-byte FIFO.
"""

from amaranth.hdl import Module, Signal, Value

from .params import RillParams

__all__ = ["enable_lead", "response_fifo_depth", "enable_copy", "enable_delayed"]


def enable_lead(params: RillParams) -> int:
    """Cycles from the enable decision to the enable registers it sets.

    3 on the deep core: one shared register, one per array row (or per block), one per PE.
    """
    return 3 if params.deep_pipeline else 1


def response_fifo_depth(params: RillParams) -> int:
    """Depth of the core's response FIFO: room for the bytes that can enter while a decision
    travels (``lead``), plus one in flight to a reader that takes a byte every cycle."""
    return enable_lead(params) + 2 if params.deep_pipeline else 2


def enable_copy(m: Module, source: Value, name: str, *, reset_less: bool) -> Signal:
    """A register holding ``source`` a cycle later, starting enabled.

    ``name`` must start with ``enable_``: flow/build.py keeps flip-flops of that name apart, which
    synthesis would otherwise merge back into one register with the whole fan-out.

    ``reset_less`` (pass ``params.deep_pipeline``) leaves the copy off the reset net. It needs
    none: it starts at its initial value and the registers it enables are held in reset anyway.
    On the ECP5 that keeps thousands of copies off the reset net; on the iCE40 a reset-less
    flip-flop starting at 1 costs an inverter cell each, which the full part lacks.
    """
    assert name.startswith("enable_"), name
    copy = Signal(init=1, name=name, reset_less=reset_less)
    m.d.sync += copy.eq(source)
    return copy


def enable_delayed(m: Module, source: Value, stages: int, name: str, *,
                   reset_less: bool) -> Value:
    """``source`` through ``stages`` :func:`enable_copy` registers in a chain (``source`` itself
    when ``stages`` is 0), named ``name_0``, ``name_1``, ..."""
    for stage in range(stages):
        source = enable_copy(m, source, f"{name}_{stage}", reset_less=reset_less)
    return source
