"""onnxruntime's exact integer semantics, on every CPU: the outside oracle Rill is checked against.

onnxruntime (``ORT_ENABLE_ALL``) runs a quantized model as int32 accumulation (+ int32 bias),
``float32(acc) * float32((a_scale * w_scale) / y_scale)``, clamp, round half to even, + zero point.
VNNI x86 and ARM compute exactly that. x86 CPUs without AVX-VNNI / AVX512-VNNI do not: their U8S8
GEMM (``vpmaddubsw``) adds pairs of u8 x s8 products in int16 with saturation, and onnxruntime
rewrites int8 QDQ activations to uint8 on x86, so int8 models take that path too. The configuration
entry ``session.x64quantprecision = "1"`` repairs only some of those kernels (constant weights,
not every QLinearMatMul, and int8 QOperator QLinearConv then fails to load).

So the oracle is one of two paths, chosen once per process:

- ``onnxruntime``: onnxruntime itself, when :func:`onnxruntime_saturates` finds this CPU's default
  path exact;
- ``emulation``: :func:`emulate` (:mod:`sw.oracle_emulation`), a numpy interpreter of the
  quantized graph that applies the integer fusions onnxruntime applies (DQ -> MatMul / Gemm /
  Conv [-> Relu] -> Q become QLinearMatMul / QGemm / QLinearConv) and computes them in int64
  and float32 as above. It is
  written from onnxruntime's definitions, not from Rill's golden model or ``sw.requant``, so it
  can check them. A model with float operators (Softmax, LayerNormalization, Add...) runs them
  in onnxruntime around the emulated integer operators (:mod:`sw.oracle_mixed`).

The emulation is preferred to that entry on saturating CPUs because it is exact for every model
form it accepts and can be tested on any machine (force it with ``RILL_ORACLE=emulate``), while
the entry's coverage depends on the operator, the weights and the zero points.
``RILL_ORACLE=onnxruntime`` forces onnxruntime.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .onnx_partition import onnxruntime_inference
from .oracle_emulation import ModelLike, NotEmulated, _proto, emulate
from .oracle_mixed import emulate_mixed

__all__ = ["ENV_VAR", "PRECISION_OPTION", "Comparison", "NotEmulated", "OracleChoice", "choice",
           "compare_with_onnxruntime", "describe",
           "emulate", "onnxruntime_run", "onnxruntime_saturates", "run", "saturation_probe"]

#: Chooses the oracle's path: ``auto`` (default), ``onnxruntime`` or ``emulate``.
ENV_VAR = "RILL_ORACLE"
#: The onnxruntime configuration entry that widens some U8S8 kernels to exact U8U8 ones on x86.
PRECISION_OPTION = "session.x64quantprecision"

# -- onnxruntime ----------------------------------------------------------------------------------

def onnxruntime_run(model: ModelLike, feeds: dict[str, Any], *,
                    session_options: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{output name: array}`` from onnxruntime on the CPU: ``ORT_ENABLE_ALL``, one thread.

    This is onnxruntime as this CPU computes it, saturating or not; :func:`run` is the oracle.
    """
    source = str(model) if isinstance(model, (str, Path)) else _proto(model).SerializeToString()
    inference = onnxruntime_inference(source, session_options)
    names = [o.name for o in inference.get_outputs()]
    return dict(zip(names, inference.run(None, feeds)))


def saturation_probe() -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """MatMulInteger, A = 255 (uint8), B = 127 (int8 constant), K = 64: the model, its feeds and
    the exact result, 64 * 255 * 127 = 2,072,640 (an int16-saturating U8S8 kernel gives
    32 * 32,767 = 1,048,544)."""
    k = 64
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    graph = helper.make_graph(
        [node], "probe", [helper.make_tensor_value_info("a", onnx.TensorProto.UINT8, [1, k])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, [1, 1])],
        [numpy_helper.from_array(np.full((k, 1), 127, np.int8), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model, {"a": np.full((1, k), 255, np.uint8)}, k * 255 * 127


@functools.cache
def onnxruntime_saturates() -> bool:
    """Whether this CPU's onnxruntime (default configuration) saturates the U8S8 GEMM."""
    model, feeds, exact = saturation_probe()
    return int(onnxruntime_run(model, feeds)["y"][0, 0]) != exact


class OracleChoice:
    """Which path the oracle takes in this process, and why."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@functools.cache
def choice() -> OracleChoice:
    forced = (os.environ.get(ENV_VAR) or "auto").strip().lower()
    if forced not in ("auto", "emulate", "emulation", "onnxruntime", "ort"):
        raise ValueError(f"{ENV_VAR}={forced!r}: use auto, onnxruntime or emulate")
    if forced != "auto":
        probe = "saturates" if onnxruntime_saturates() else "is exact"
        path = "emulation" if forced.startswith("emul") else "onnxruntime"
        return OracleChoice(path, f"forced by {ENV_VAR}={forced}; this CPU's onnxruntime U8S8 "
                            f"integer GEMM {probe}")
    if onnxruntime_saturates():
        return OracleChoice("emulation", "this CPU's onnxruntime saturates its U8S8 integer GEMM "
                            "(no AVX-VNNI); the numpy emulation computes the exact result")
    return OracleChoice("onnxruntime", "this CPU's onnxruntime U8S8 integer GEMM is exact")


def describe() -> str:
    """One line naming the oracle's path, for test headers and the demo."""
    return f"onnxruntime oracle: {choice()}"


def run(model: ModelLike, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """onnxruntime's exact result, ``{output name: array}``, whatever this CPU's kernels do."""
    if choice().path == "emulation":
        try:
            return emulate(model, feeds)
        except NotEmulated as error:
            if "the emulation covers quantized integer operators" not in str(error):
                raise
        return emulate_mixed(model, feeds)   # float operators: through onnxruntime
    return onnxruntime_run(model, feeds)


# -- comparing a device with onnxruntime ----------------------------------------------------------

def _differing(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> int:
    """Output elements of ``got`` that differ from ``want`` (a whole tensor when dtype or shape
    differ)."""
    count = 0
    for name, value in want.items():
        mine = np.asarray(got.get(name))
        if mine.dtype != value.dtype or mine.shape != value.shape:
            count += value.size
        else:
            count += int(np.count_nonzero(mine != value))
    return count


class Comparison:
    """A device's outputs against this CPU's onnxruntime and, where they differ, against the exact
    result: whose answer is wrong."""

    def __init__(self, device: dict[str, np.ndarray], onnxruntime: dict[str, np.ndarray],
                 exact: dict[str, np.ndarray] | None, saturates: bool,
                 exact_note: str = ""):
        self.total = sum(v.size for v in onnxruntime.values())
        self.differ_from_onnxruntime = _differing(device, onnxruntime)
        self.exact_available = exact is not None
        self.differ_from_exact = None if exact is None else _differing(device, exact)
        self.onnxruntime_off_exact = None if exact is None else _differing(onnxruntime, exact)
        self.saturates, self.exact_note = saturates, exact_note

    @property
    def device_is_right(self) -> bool:
        """The device equals onnxruntime's exact result (this CPU's, or the emulated one)."""
        if self.differ_from_onnxruntime == 0:
            return True
        return self.differ_from_exact == 0

    def lines(self) -> list[str]:
        n, total = self.differ_from_onnxruntime, self.total
        if n == 0:
            return [f"onnxruntime: equal ({total} outputs)"]
        head = f"onnxruntime: {n} of {total} outputs differ"
        if not self.exact_available:
            return [head, f"  no exact reference for this model ({self.exact_note}); onnxruntime "
                    "on a CPU with AVX-VNNI or on ARM decides which answer is right"]
        if self.differ_from_exact == 0:
            if self.saturates:
                why = ("this CPU's onnxruntime is wrong: its U8S8 integer GEMM adds pairs of "
                       "u8 x s8 products in int16 with saturation (x86 without AVX-VNNI)")
            else:
                why = ("onnxruntime on this CPU disagrees with its exact integer semantics, "
                       "though the saturation probe passed: please report this model")
            return [head, "  the device equals onnxruntime's exact integer result (what VNNI x86 "
                    "and ARM compute, emulated here)", f"  {why}; the configuration entry "
                    f"{PRECISION_OPTION}=1 makes some of its kernels exact, not all"]
        return [head, f"  the device is wrong: {self.differ_from_exact} of {total} outputs differ "
                "from onnxruntime's exact integer result"
                + ("" if self.onnxruntime_off_exact else " (which this CPU's onnxruntime gives)")]


def compare_with_onnxruntime(model: ModelLike, feeds: dict[str, Any],
                             device_outputs: dict[str, np.ndarray]) -> Comparison:
    """Run onnxruntime beside a device's outputs; where they differ, also the exact emulation."""
    proto = _proto(model)
    ort_outputs = onnxruntime_run(proto, feeds)
    device_outputs = {k: device_outputs[k] for k in ort_outputs if k in device_outputs}
    ort_outputs = {k: v for k, v in ort_outputs.items() if k in device_outputs}
    exact, note = None, ""
    if _differing(device_outputs, ort_outputs):
        try:
            exact = emulate(proto, feeds)
        except NotEmulated as error:
            note = str(error)
        else:
            exact = {k: exact[k] for k in ort_outputs}
    return Comparison(device_outputs, ort_outputs, exact, onnxruntime_saturates(), note)
