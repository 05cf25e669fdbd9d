"""A feed-forward pipeline's register stages, numbered as they are built.

Each stage registers a valid, the configuration its request was issued under, and whatever values
the stage's logic computes; its registers are named after the stage's number, so that a waveform
and a latency's count read the same. Only the valids have a reset: a stage's data means nothing
until its valid says so, and the reset net stays small (on a large core it would otherwise span
the die).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

__all__ = ["PipelineStages", "Stage", "delayed"]


class Stage:
    """One register stage: :attr:`valid`, :attr:`mode` and the registers :meth:`reg` adds."""

    def __init__(self, m: Module, index: int, valid: Value, mode: Value, mode_shape):
        self._m, self.index = m, index
        self.valid = Signal(name=f"valid{index}")
        self.mode = Signal(mode_shape, name=f"mode{index}", reset_less=True)
        m.d.sync += [self.valid.eq(valid), self.mode.eq(mode)]

    def reg(self, name: str, shape, value: Value) -> Signal:
        """``value`` registered in this stage as ``{name}{index}``; ``shape`` is its width and
        signedness (a value wider than it is truncated)."""
        signal = Signal(shape, name=f"{name}{self.index}", reset_less=True)
        self._m.d.sync += signal.eq(value)
        return signal


class PipelineStages:
    """Builds stages one after another, from a request's ``valid`` and ``mode``; :attr:`count` is
    the number built, which the latencies a caller promises are checked against."""

    def __init__(self, m: Module, valid: Value, mode: Value, mode_shape):
        self._m, self._mode_shape = m, mode_shape
        self.valid, self.mode = valid, mode
        self.count = 0

    def stage(self) -> Stage:
        """The next stage, its valid and mode registered from the previous one's."""
        stage = Stage(self._m, self.count, self.valid, self.mode, self._mode_shape)
        self.valid, self.mode = stage.valid, stage.mode
        self.count += 1
        return stage

    def output(self, valid: Signal, payload: Signal, value: Value):
        """The last stage: the previous stage's valid and ``value`` into the output registers."""
        self._m.d.sync += [valid.eq(self.valid), payload.eq(value)]
        self.count += 1


def delayed(m: Module, value: Value, cycles: int, name: str) -> Value:
    """``value`` of ``cycles`` cycles ago, through a line of registers named ``name_1``,
    ``name_2``, ... (``value`` itself when ``cycles`` is 0)."""
    for stage in range(cycles):
        reg = Signal.like(value, name=f"{name}_{stage + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
