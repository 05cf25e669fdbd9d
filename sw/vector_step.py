"""Model steps on the device's vector unit: TFLite's int8 ADD of two tensors, its global
average pooling, its MEAN over a map's pixels and its windowed max and average pooling
(``hw.isa`` ``ADD``, ``AVGPOOL``, ``MEAN``, ``POOL``), each a call of its own: the inputs go
into the activation SRAM, the unit computes, ``READ_ACTS`` brings the result back.

An ADD is elementwise, so it runs on its tensors flattened into words of ``2 * rows`` lanes, in
whatever layout both inputs have (NCHW between device convs, so the maps stay in the device's
order). Pooling takes a map's channels ``2 * rows`` to a word, one word per pixel and
channel block, as the array's convolutions lay maps out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hw.isa import RESPONSE_HEADER_BYTES, ConvGeometry, Status, VectorStage
from hw.params import RillParams

from .compiler import CompileError, DeviceCall
from .conv import pack_feature_map, unpack_feature_map
from .device_base import Device, DeviceError
from .program import Program
from .vector_ops import add_words, avgpool_words, mean_words, pool_reciprocal, window_pool_words

__all__ = ["VectorStep", "VectorCall", "PoolWindow", "pool_fits", "pooled_inputs",
           "REORDER_ONLY"]

#: AVGPOOL's and POOL's ``groups`` field is a byte, as are POOL's geometry's sizes.
_MAX_GROUPS = 255
_MAX_SIZE = 255


@dataclass(frozen=True)
class PoolWindow:
    """A windowed pooling's window: ``kernel`` ``(kh, kw)``, one ``stride`` both ways,
    ``pads`` ``(top, left, bottom, right)`` (TFLite's SAME or VALID), over an ``in_size``
    ``(h, w)`` map."""
    kernel: tuple[int, int]
    stride: int
    pads: tuple[int, int, int, int]
    in_size: tuple[int, int]

    @property
    def out_size(self) -> tuple[int, int]:
        return tuple((self.in_size[i] + self.pads[i] + self.pads[i + 2] - self.kernel[i])
                     // self.stride + 1 for i in range(2))

    @property
    def whole(self) -> bool:
        """Every window lies inside the map: an average's count is the kernel's."""
        return not any(self.pads[:2]) and all(
            (self.out_size[i] - 1) * self.stride + self.kernel[i] <= self.in_size[i]
            for i in range(2))

    def geometry(self) -> ConvGeometry:
        """The ``CONV_GEOMETRY`` a ``POOL`` walks."""
        (h, w), (kh, kw), (_, ow) = self.in_size, self.kernel, self.out_size
        return ConvGeometry(in_w=w, in_h=h, out_w=ow, kernel_h=kh, kernel_w=kw,
                            stride=self.stride, pad_top=self.pads[0], pad_left=self.pads[1])

    def fits(self, params: RillParams, channels: int, average: bool) -> bool:
        """Whether ``POOL`` takes it on a core of ``params``: its sizes in the geometry's
        fields, the map and the output apart in the activation SRAM, an average's windows
        whole."""
        groups = -(-channels // params.act_lanes)
        sizes = (*self.in_size, *self.out_size, *self.kernel, self.stride, *self.pads[:2])
        (h, w), (oh, ow) = self.in_size, self.out_size
        return (params.vector_unit and params.conv_addressing and 1 <= groups <= _MAX_GROUPS
                and all(0 <= size <= _MAX_SIZE for size in sizes) and min(oh, ow) >= 1
                and groups * (h * w + oh * ow) <= params.act_depth
                and (self.whole or not average))


def _words(values: np.ndarray, lanes: int) -> np.ndarray:
    """A flat int8 array as words of ``lanes`` lanes, the last one zero-padded."""
    flat = np.ascontiguousarray(values, dtype=np.int8).reshape(-1)
    return np.pad(flat, (0, -len(flat) % lanes)).reshape(-1, lanes)


def pool_fits(params: RillParams, pixels: int, channels: int) -> bool:
    """Whether one image's map fits the vector unit's pooling: its words and the output's in
    the activation SRAM, its channel blocks in AVGPOOL's fields."""
    groups = -(-channels // params.act_lanes)
    if not (params.vector_unit and 1 <= groups <= _MAX_GROUPS and pixels < 1 << 16
            and groups * (pixels + 1) <= params.act_depth):
        return False
    try:
        pool_reciprocal(pixels)
    except ValueError:   # beyond any activation SRAM's maps but the very largest
        return False
    return True


@dataclass(eq=False)
class VectorCall(DeviceCall):
    """One call's command stream and how its answers make the step's output: ``answers``, in
    order, ``words`` (a ``READ_ACTS`` of that many words) or ``(m, n, dtype)`` (a ``STORE`` of
    ``m`` rows of ``n`` values); ``finish`` makes the output of the arrays they give."""

    answers: list
    finish: Callable[[list[np.ndarray]], np.ndarray] = field(repr=False)

    def assemble(self, response: bytes) -> np.ndarray:
        lanes, at, blocks = self.program.params.act_lanes, 0, []
        for answer in self.answers:
            status = response[at]
            if status != Status.OK.value:
                raise DeviceError(f"{self.name}: the device refused an instruction with status "
                                  f"{Status(status).name}", status=status, opcode=response[at + 1])
            at += RESPONSE_HEADER_BYTES
            m, n, dtype = (answer, lanes, np.dtype(np.int8)) if isinstance(answer, int) \
                else (answer[0], answer[1], np.dtype(answer[2]))
            blocks.append(np.frombuffer(response, dtype.newbyteorder("<"), m * n, at)
                          .reshape(m, n))
            at += m * n * dtype.itemsize
        return self.finish(blocks)


@dataclass(eq=False)
class VectorStep:
    """An ADD (``op == "add"``, the three ``stages`` of ``hw.isa.VectorStage``), an average
    pooling (``"avgpool"``: global, or over a ``window``), a max pooling (``"maxpool"`` over a
    ``window``) or a MEAN over the pixels (``"mean"``, its ``stages`` from
    ``sw.vector_ops.mean_stages``). A pooling's input is NHWC when ``channels_last``, else
    NCHW; the output keeps the layout (a 1x1 map for a global one), or, ``flat``, is ``(N,
    C)``; ``act_range`` is a pooling's fused activation clamp (a global one's applied on the
    host: it follows the rounding in TFLite's kernel too, so that is exact; a window's by the
    unit)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    stages: tuple[VectorStage, ...] = ()
    channels_last: bool = True
    act_range: tuple[int, int] = (-128, 127)
    flat: bool = False
    window: PoolWindow | None = None

    def on_host(self, env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The step's output computed on the host with the unit's own arithmetic (equal to the
        device's, and so to TFLite's): where the step's inputs come from the host and its
        output goes back there, a call of its own would only add its maps to the link's load."""
        values = [np.asarray(env[name]) for name in self.inputs]
        if self.op == "add":
            return {self.outputs[0]: add_words(values[0], values[1], self.stages)}
        x = values[0] if self.channels_last else values[0].transpose(0, 2, 3, 1)
        n, h, w, c = x.shape
        if self.window is not None:
            pooled = np.stack([self._window_words(image[None]) for image in x])[:, 0]
            return {self.outputs[0]: pooled if self.channels_last
                    else pooled.transpose(0, 3, 1, 2)}
        blocks = x.reshape(n, h * w, c)
        if self.op == "mean":
            return {self.outputs[0]: self._pooled(mean_words(blocks, self.stages))}
        reciprocal, shift = pool_reciprocal(h * w)
        return {self.outputs[0]: self._pooled(avgpool_words(blocks, h * w, reciprocal, shift))}

    def _window_words(self, maps: np.ndarray) -> np.ndarray:
        """``POOL``'s arithmetic on ``(groups, h, w, lanes)`` words."""
        average, geometry = self.op == "avgpool", self.window.geometry()
        reciprocal, shift = pool_reciprocal(geometry.kernel) if average else (0, 0)
        return window_pool_words(maps, geometry, self.window.out_size[0], average, reciprocal,
                                 shift, self.clamp_stage)

    @property
    def clamp_stage(self) -> VectorStage:
        """Stage 2 as a ``POOL`` reads it: only its clamp."""
        return VectorStage(lo=self.act_range[0], hi=self.act_range[1])

    def _pooled(self, means: np.ndarray) -> np.ndarray:
        """``(N, C)`` means as the step's output: clamped to the fused activation's range, a
        1x1 map in the step's layout (or, ``flat``, as they are)."""
        n, c = means.shape
        means = np.clip(means, *self.act_range).astype(np.int8)
        if self.flat:
            return means
        return means.reshape(n, 1, 1, c) if self.channels_last else means.reshape(n, c, 1, 1)

    def pool(self, prog: Program, act_addr: int, out_addr: int, groups: int, pixels: int):
        """The pooling's instructions on a map of ``groups`` blocks of ``pixels`` words at
        ``act_addr`` (a window's its ``in_size``), its output into the words from
        ``out_addr``."""
        if self.window is not None:
            prog.conv_geometry(self.window.geometry())
            prog.vector_config(2, self.clamp_stage)
            prog.pool(act_addr, out_addr, groups, self.window.out_size[0],
                      average=self.op == "avgpool")
        elif self.op == "mean":
            for slot in (0, 2):   # the input offset, the output stage
                prog.vector_config(slot, self.stages[slot])
            prog.mean(act_addr, out_addr, groups, pixels)
        else:
            prog.avgpool(act_addr, out_addr, groups, pixels)

    def execute(self, device: Device, env: dict[str, np.ndarray],
                programs: list | None = None) -> dict[str, np.ndarray]:
        values = [np.asarray(env[name]) for name in self.inputs]
        for name, value in zip(self.inputs, values):
            if value.dtype != np.int8:
                raise CompileError(f"{self.name}: input {name!r} is {value.dtype}, not int8")
        call = self.call(device.params, *values)
        # Only the activation SRAM is touched, which holds no resident model's state.
        response = device.execute(call.command_bytes, call.response_bytes, call.frame_cuts,
                                  keeps_resident=True)
        if programs is not None:
            programs.append(call)
        return {self.outputs[0]: call.assemble(response)}

    def call(self, params: RillParams, *values: np.ndarray) -> VectorCall:
        if not params.vector_unit:
            raise CompileError(f"{self.name}: this core has no vector unit")
        if self.op == "add":
            return self._add_call(params, *values)
        return self._pool_call(params, values[0])

    def _add_call(self, params: RillParams, a: np.ndarray, b: np.ndarray) -> VectorCall:
        if a.shape != b.shape:
            raise CompileError(f"{self.name}: shapes {a.shape} and {b.shape} differ (the vector "
                               f"unit adds elementwise)")
        lanes = params.act_lanes
        wa, wb = _words(a, lanes), _words(b, lanes)
        prog, answers = Program(params), []
        for slot, stage in enumerate(self.stages):
            prog.vector_config(slot, stage)
        room = params.act_depth // 2   # a piece of each input; the sum written over a's
        for start in range(0, len(wa), room):
            piece = slice(start, start + room)
            count = len(wa[piece])
            prog.load_acts(0, wa[piece])
            prog.load_acts(count, wb[piece])
            prog.add(0, count, 0, count)
            prog.read_acts(0, count)
            answers.append(count)

        def finish(blocks):
            return np.concatenate(blocks).reshape(-1)[:a.size].reshape(a.shape)
        return VectorCall(self.name, prog, answers, finish)

    def _pool_call(self, params: RillParams, x: np.ndarray) -> VectorCall:
        if x.ndim != 4:
            raise CompileError(f"{self.name}: pooling needs a 4-D map, got shape {x.shape}")
        nchw = x.transpose(0, 3, 1, 2) if self.channels_last else x
        n, c, h, w = nchw.shape
        if self.window is not None:
            return self._window_call(params, nchw)
        if not pool_fits(params, h * w, c):
            raise CompileError(f"{self.name}: a {h}x{w}x{c} map does not fit the activation "
                               f"SRAM's {params.act_depth} words for pooling")
        groups = -(-c // params.act_lanes)
        prog, answers = Program(params), []
        for image in nchw:   # the map as the array's convolutions lay it out, pooled below it
            prog.load_acts(groups, pack_feature_map(params, image, False))
            self.pool(prog, groups, 0, groups, h * w)
            prog.read_acts(0, groups)
            answers.append(groups)

        def finish(out):
            return self._pooled(np.stack([unpack_feature_map(params, words, c, 1, 1)[:, 0, 0]
                                          for words in out]))
        return VectorCall(self.name, prog, answers, finish)


    def _window_call(self, params: RillParams, nchw: np.ndarray) -> VectorCall:
        n, c, h, w = nchw.shape
        if (h, w) != self.window.in_size or not self.window.fits(params, c,
                                                                 self.op == "avgpool"):
            raise CompileError(f"{self.name}: a {h}x{w}x{c} map does not fit the vector "
                               f"unit's windowed pooling of {self.window}")
        groups, (oh, ow) = -(-c // params.act_lanes), self.window.out_size
        prog, answers = Program(params), []
        for image in nchw:   # the map as the array's convolutions lay it out, pooled after it
            prog.load_acts(0, pack_feature_map(params, image, False))
            self.pool(prog, 0, groups * h * w, groups, h * w)
            prog.read_acts(groups * h * w, groups * oh * ow)
            answers.append(groups * oh * ow)

        def finish(out):
            pooled = np.stack([unpack_feature_map(params, words, c, oh, ow) for words in out])
            return pooled.transpose(0, 2, 3, 1) if self.channels_last else pooled
        return VectorCall(self.name, prog, answers, finish)


#: Host steps that leave a pooled map's bytes as they are: a 1x1 map's transpose, a flatten.
REORDER_ONLY = ("Transpose", "TFL_RESHAPE", "Flatten", "Reshape")


def pooled_inputs(steps) -> dict[int, VectorStep]:
    """``{device-layer index of a Gemm: the pooling it reads}``: each Gemm that reads a conv's
    map through a global average pooling (on the vector unit, its fused activation none) and
    only transposes and flattens of the pooled 1x1 map, which move no byte of it. On chip the
    pooled map is a one-row matrix in the layout the Gemm reads (:mod:`sw.chain`)."""
    found, index, previous, between = {}, -1, None, []
    for step in steps:
        if not hasattr(step, "linear"):
            between.append(step)
            continue
        index += 1
        if previous is not None and previous.kind == "conv" and step.kind == "gemm" \
                and not step.trans_a and between and isinstance(between[0], VectorStep):
            pool, rest = between[0], between[1:]
            names = [previous.output, *pool.outputs, *(t.outputs[0] for t in rest)]
            if (pool.op in ("avgpool", "mean") and pool.window is None
                    and pool.act_range == (-128, 127)
                    and pool.inputs[0] == previous.output
                    and all(t.op in REORDER_ONLY for t in rest)
                    and all(t.inputs[0] == name for t, name in zip(rest, names[1:]))
                    and names[-1] == step.input):
                found[index] = pool
        previous, between = step, []
    return found
