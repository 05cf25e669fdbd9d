"""LiteRT as the oracle of TFLite models: its interpreter with the reference kernels
(``OpResolverType.BUILTIN_REF``), whose arithmetic is the contract for ``.tflite`` models
(``docs/tflite-arithmetic.md``). The interpreter's default resolver (XNNPACK) and its optimized
kernels round differently now and then: they are never used here.
"""

from __future__ import annotations

import faulthandler
import re
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["litert_run", "LiteRTComparison", "compare_with_litert", "ReferenceCannotCheck",
           "DEFECTIVE_REFERENCE"]


class ReferenceCannotCheck(RuntimeError):
    """LiteRT's reference kernels cannot check the model: the reference resolver has no kernel
    for an operator version in it (the converter writes int8 TILE as version 3 and int8
    DEPTH_TO_SPACE as version 2, which only the optimized resolver registers), or its kernel
    for an operator is known to be wrong (:data:`DEFECTIVE_REFERENCE`)."""


#: Operators whose int8 reference kernel in this LiteRT build gives wrong answers, and how.
#: ai-edge-litert 2.3's ``SUM`` (``Register_SUM_REF``) writes one constant, whatever the
#: input; its optimized kernel and the reference source (``QuantizedMeanOrSum`` with
#: ``compute_sum``), which Rill computes, agree with each other.
DEFECTIVE_REFERENCE = {"SUM": "its int8 SUM writes one constant whatever the input"}


def _defects(model: str | Path) -> list[str]:
    from .tflite_reader import read_tflite
    graph = read_tflite(model)
    return sorted({f"{op.name} ({DEFECTIVE_REFERENCE[op.name]})" for op in graph.operators
                   if op.name in DEFECTIVE_REFERENCE
                   and graph.tensors[op.inputs[0]].dtype == np.int8})


_worker: ProcessPoolExecutor | None = None


def litert_run(model: str | Path, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """Outputs of LiteRT's reference kernels, ``{output name: array}``. The model's batch of one
    is run once per row of the feeds (rows are independent), and the rows stacked.

    LiteRT runs in a worker process, kept for the next call: a kernel's failed check aborts
    the process it runs in (a SOFTMAX whose input scale is too small for its multiplier, as
    in an untrained network's), which then raises :class:`ReferenceCannotCheck` here instead
    of ending the caller."""
    global _worker
    if _worker is None:
        # Forked: a spawned worker would import the caller's __main__ again (the CLI's).
        # No Python traceback from the worker on an abort (the caller reports it).
        _worker = ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork"),
                                      initializer=faulthandler.disable)
    try:
        return _worker.submit(_run, str(model), dict(feeds)).result()
    except BrokenProcessPool:
        _worker = None
        raise ReferenceCannotCheck(
            f"LiteRT's reference kernels (ai-edge-litert {_version()}) aborted on this model "
            "(a check in a kernel failed: e.g. a SOFTMAX input scale too small for its "
            "multiplier), so they cannot check it") from None


def _run(model: str, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """:func:`litert_run`, in the worker."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    try:
        interpreter = Interpreter(model_path=str(model),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    except ValueError as error:
        if "Registration failed" not in str(error):
            raise
        found = re.search(r"builtin opcode '(\w+)' version '(\d+)'", str(error))
        what = f"{found[1]} version {found[2]}" if found else "an operator in the model"
        raise ReferenceCannotCheck(
            f"LiteRT's reference kernels (ai-edge-litert {_version()}) have no {what}, so they "
            "cannot check this model (its optimized kernels round differently and are not "
            "the contract)") from None
    defects = _defects(model)
    if defects:
        raise ReferenceCannotCheck(
            f"LiteRT's reference kernels (ai-edge-litert {_version()}) cannot check this "
            f"model: {'; '.join(defects)}")
    interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    rows = {len(np.asarray(feeds[d["name"]])) for d in inputs}
    if len(rows) != 1:
        raise ValueError(f"the feeds have different batch sizes: {sorted(rows)}")
    results: dict[str, list[np.ndarray]] = {d["name"]: [] for d in outputs}
    for row in range(rows.pop()):
        for detail in inputs:
            interpreter.set_tensor(detail["index"], np.asarray(feeds[detail["name"]])[row:row + 1])
        interpreter.invoke()
        for detail in outputs:
            results[detail["name"]].append(interpreter.get_tensor(detail["index"]).copy())
    return {name: np.concatenate(parts) for name, parts in results.items()}


def _version() -> str:
    return version("ai-edge-litert")


class LiteRTComparison:
    """A device's outputs against LiteRT's reference kernels."""

    def __init__(self, device: dict[str, np.ndarray], reference: dict[str, np.ndarray]):
        self.total = sum(v.size for v in reference.values())
        self.differ = sum(int(np.count_nonzero(np.asarray(device[k]).reshape(v.shape) != v))
                          if np.asarray(device[k]).size == v.size else v.size
                          for k, v in reference.items())

    @property
    def device_is_right(self) -> bool:
        return self.differ == 0

    def lines(self) -> list[str]:
        if self.differ == 0:
            return [f"LiteRT (reference kernels): equal ({self.total} outputs)"]
        return [f"LiteRT (reference kernels): {self.differ} of {self.total} outputs differ; "
                "the reference kernels are the contract, so the device is wrong"]


def compare_with_litert(model: str | Path, feeds: dict[str, Any],
                        device_outputs: dict[str, np.ndarray]) -> LiteRTComparison:
    return LiteRTComparison(device_outputs, litert_run(model, feeds))
