"""STORE's column select: one accumulator of a row read from every column's bank.

A STORE reads a row from all ``cols`` banks at once, then sends its columns one after another.
In one cycle, the ``cols``-way select sits behind the accumulator banks' forwarding mux (the hit
flag, the forwarding mux, a 16-way select and the requantizer's request register: too long for a
cycle on a large array). The deep core splits it at a register: groups of :data:`GROUP` columns
are selected into one register each, and a cycle later the group is
(``hw.cycles.store_select_latency``). The vector unit selects its lane sums the same way.
"""

from amaranth.hdl import Cat, Module, Signal, Value

__all__ = ["GROUP", "column_select"]

#: Columns per first-stage select: a 4-way select of a bit is one ECP5 slice.
GROUP = 4


def column_select(m: Module, row, cols: int, column: Value, column_later: Value,
                  advance: Value, *, registered: bool, name: str = "column_group") -> Value:
    """``row[column]`` (``row``: ``cols`` words of one width, indexable), in one cycle or, when
    ``registered``, over two.

    ``column`` indexes ``row`` as it is now; with ``registered``, the result comes a cycle of
    ``advance`` later, when ``column_later`` is that cycle's ``column`` (the caller delays it).
    The first stage's registers are named ``name_0``, ``name_1``, ...
    """
    words = [row[c] for c in range(cols)]
    width = len(Value.cast(words[0]))
    if not registered:
        return words[0] if cols == 1 else Cat(*words).word_select(column, width)
    if cols == 1:
        only = Signal(width, name=f"{name}_0", reset_less=True)
        with m.If(advance):
            m.d.sync += only.eq(words[0])
        return only
    groups = []
    for first in range(0, cols, GROUP):
        group = Signal(width, name=f"{name}_{first // GROUP}", reset_less=True)
        with m.If(advance):
            m.d.sync += group.eq(Cat(*words[first:first + GROUP]).word_select(column[:2], width))
        groups.append(group)
    return Cat(*groups).word_select(column_later[2:], width) if len(groups) > 1 else groups[0]
