"""A loop index whose "last iteration" is a register, not a compare.

The sequencer's nested loops step the next loop out when the inner one is at its bound. With the
bound tested by a compare, the clock enables of every outer loop's registers would hang off a
chain of equality compares (carry chains on the ECP5), one per loop level. Here the test is
computed a cycle early, into a flip-flop, from the index and the bound that are registers too.
"""

from amaranth.hdl import Module, Signal, Value

__all__ = ["AddressedLoop", "CountedLoop"]


class CountedLoop:
    """An index counting ``first, first + 1, ..., last`` then back to 0, with :attr:`at_last`
    registered.

    The caller decides when the loop starts and when it steps, by where it calls :meth:`start`
    and :meth:`step` (under its own ``m.If``).

    Attributes
    ----------
    index : Signal(width)
        The current iteration.
    last : Signal(width)
        The bound, inclusive, taken by :meth:`start`.
    at_last : Signal(1)
        ``index == last``, from a register.
    """

    def __init__(self, width: int, name: str):
        self.index = Signal(width, name=name)
        self.last = Signal(width, name=f"{name}_last")
        self.at_last = Signal(name=f"{name}_at_last")

    def start(self, m: Module, last: Value, *, first: int = 0, first_is_last: Value | None = None):
        """From the next cycle, iterate from ``first`` to ``last``. ``first_is_last`` is
        ``first == last`` (computed here when not given: a caller may know it from fewer bits)."""
        m.d.sync += [self.index.eq(first), self.last.eq(last),
                     self.at_last.eq(last == first if first_is_last is None else first_is_last)]

    def step(self, m: Module):
        """Go to the next iteration: after ``last``, back to 0 (the loop starts over, with the same
        bound, as it does when it is nested in another)."""
        with m.If(self.at_last):
            m.d.sync += [self.index.eq(0), self.at_last.eq(self.last == 0)]
        with m.Else():
            m.d.sync += [self.index.eq(self.index + 1),
                         self.at_last.eq(self.index + 1 == self.last)]


class AddressedLoop(CountedLoop):
    """A :class:`CountedLoop` over the rows of an SRAM tile that carries the tile's read address,
    ``base + index``, as a register of its own.

    A read address fans out to every block RAM of its tile, so it comes straight from a
    register: no adder sits between the loop's registers and that fan-out.

    The caller names the tile with :meth:`load_base` before the loop starts (its value reaches the
    address register directly) and again at each wrap (:meth:`step` runs on to ``base + last + 1``,
    the next tile's first row, unless told where it is).

    Attributes
    ----------
    base : Signal(address_width)
        The tile's first row.
    address : Signal(address_width)
        ``base + index``.
    """

    def __init__(self, width: int, name: str, *, address_width: int):
        super().__init__(width, name)
        self.base = Signal(address_width, name=f"{name}_base")
        self.address = Signal(address_width, name=f"{name}_address")

    def load_base(self, m: Module, base: Value):
        """From the next cycle the tile starts at ``base``; the index is the caller's to set (by
        :meth:`start`, or by a wrap of :meth:`step` in the same cycle)."""
        m.d.sync += [self.base.eq(base), self.address.eq(base)]

    def start(self, m: Module, last: Value, *, first: int = 0,
              first_is_last: Value | None = None):
        """As :meth:`CountedLoop.start`; the base is the one :meth:`load_base` set in an earlier
        cycle."""
        super().start(m, last, first=first, first_is_last=first_is_last)
        if first:
            m.d.sync += self.address.eq(self.address + first)

    def step(self, m: Module):
        super().step(m)
        m.d.sync += self.address.eq(self.address + 1)
