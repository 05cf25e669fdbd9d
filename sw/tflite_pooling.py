"""The lowering of TFLite's pooling, MEAN and SUM: onto the vector unit (``AVGPOOL``, ``MEAN``,
``POOL``: :class:`sw.vector_step.VectorStep`) where it takes them, else host steps in LiteRT's
reference arithmetic, saying why.

A mixin of :class:`sw.tflite_lowering.Lowering`: its methods use the lowering's tensors,
quantization, vector and host steps.
"""

from __future__ import annotations

from .vector_ops import mean_stages
from .vector_step import PoolWindow, pool_fits

__all__ = ["PoolingOperators"]


class PoolingOperators:
    """AVERAGE_POOL_2D, MAX_POOL_2D, MEAN and SUM (``_<operator>``, as :meth:`Lowering.lower` calls
    them)."""

    def _average_pool_2d(self, op):
        _, h, w, c = self.tensor(op.inputs[0]).shape
        pads, out = self._window(op, op.options["kernel"])
        global_pool = (tuple(op.options["kernel"]) == (h, w) and tuple(out) == (1, 1)
                       and not any(pads))
        if global_pool and pool_fits(self.params, h * w, c):
            self._vector(op, "avgpool", op.inputs[:1], act_range=self._act_range(op))
            return
        self._pool(op, "TFL_AVERAGE_POOL_2D", "avgpool",
                   f"a {h}x{w}x{c} map does not fit the activation SRAM"
                   if global_pool and self.params.vector_unit else None)

    def _max_pool_2d(self, op):
        self._pool(op, "TFL_MAX_POOL_2D", "maxpool")

    def _pool(self, op, kind: str, unit_op: str, why: str | None = None):
        """A windowed pooling on the vector unit (``POOL``) where it takes it, else on the
        host, saying ``why`` (or why not the window)."""
        _, h, w, c = self.tensor(op.inputs[0]).shape
        kernel, stride = tuple(op.options["kernel"]), tuple(op.options["stride"])
        pads, out = self._window(op, kernel)
        # A stride along an axis of one output (a 1-D pooling's height) moves nothing: the
        # other axis's serves, where the window keeps its output size with it.
        if stride[0] != stride[1] and 1 in out:
            one = (stride[1],) * 2 if out[0] == 1 else (stride[0],) * 2
            if PoolWindow(kernel, one[0], pads, (h, w)).out_size == tuple(out):
                stride = one
        window = PoolWindow(kernel, stride[0], pads, (h, w))
        if why is None:
            why = ("no vector unit on this core" if not self.params.vector_unit
                   else "this core walks no maps (conv_addressing)"
                   if not self.params.conv_addressing
                   else "its strides differ" if stride[0] != stride[1]
                   else "a window reaches past the map (the unit averages whole windows)"
                   if unit_op == "avgpool" and not window.whole
                   else None if window.fits(self.params, c, unit_op == "avgpool")
                   else f"a {h}x{w}x{c} map and its output do not fit the activation SRAM")
        if why is None:
            self._vector(op, unit_op, op.inputs[:1], act_range=self._act_range(op),
                         window=window)
            return
        self.host(op, kind, dict(kernel=kernel, stride=stride, pads=pads,
                                 act_range=self._act_range(op)), why)

    def _host_mean(self, op, axes: tuple[int, ...], why: str, compute_sum: bool = False):
        """MEAN (or SUM: ``compute_sum``) on the host, in the reference's arithmetic."""
        (s_in, zp_in), (s_out, zp_out) = self._quant(op.inputs[0]), self._quant(op.outputs[0])
        self.host(op, "TFL_MEAN", dict(axes=axes, input_scale=s_in, input_zp=zp_in,
                                       output_scale=s_out, output_zp=zp_out,
                                       keep_dims=op.options.get("keep_dims", False),
                                       compute_sum=compute_sum), why)

    def _sum(self, op):
        """SUM: the reference's ``QuantizedMeanOrSum`` without the division, on the host."""
        self._host_mean(op, self._axes(op), "runs on the host, as LiteRT's reference kernel "
                        "computes it", compute_sum=True)

    def _mean(self, op):
        axes = self._axes(op)
        (s_in, zp_in), (s_out, zp_out) = self._quant(op.inputs[0]), self._quant(op.outputs[0])
        shape = self.tensor(op.inputs[0]).shape
        spatial = len(shape) == 4 and axes == (1, 2)
        stages = spatial and mean_stages(s_in, zp_in, s_out, zp_out, shape[1] * shape[2])
        if stages and pool_fits(self.params, shape[1] * shape[2], shape[3]):
            self._vector(op, "mean", op.inputs[:1], stages=stages,
                         flat=not op.options.get("keep_dims", False))
            return
        self._host_mean(op, axes, "no vector unit on this core" if not self.params.vector_unit
                        else "the vector unit takes means over a map's height and width"
                        if not spatial else "its multiplier needs a left shift" if not stages
                        else f"a {shape[1]}x{shape[2]}x{shape[3]} map does not fit the "
                             "activation SRAM")
