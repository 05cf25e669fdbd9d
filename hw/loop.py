"""A loop index whose "last iteration" is a register, not a compare.

The sequencer's nested loops step the next loop out when the inner one is at its bound. With the
bound tested by a compare, the clock enables of every outer loop's registers hung off a chain of
equality compares (carry chains on the ECP5): the 85F 16x16's critical path ran through three of
them. Here the test is computed a cycle early, into a flip-flop, from the index and the bound
that are registers too.
"""

from amaranth.hdl import Module, Signal, Value

__all__ = ["CountedLoop"]


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
