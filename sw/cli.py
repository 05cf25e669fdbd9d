"""The ``python -m sw`` command line: run, demo, bench, info."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw.params import RillParams

from .cli_bench import cmd_bench
from .cli_common import (
    UsageError,
    add_device_options,
    board_params,
    check_writable,
    device_options,
    executor,
    load_array,
    params_from,
)
from .registry import BOARDS_GROUP

__all__ = ["main", "BOARDS_GROUP", "UsageError", "board_params"]


def _name_path_pairs(values: list[str], names: list[str], what: str) -> dict[str, str]:
    """``--input x.npy`` (single-input models) or ``--input name=x.npy`` (any model)."""
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if len(names) != 1 or len(values) != 1:
                raise UsageError(f"the model has {what}s {names}; give each as "
                                 f"--{what} NAME=PATH")
            name, path = names[0], value
        if name not in names:
            raise UsageError(f"the model has no {what} {name!r}; its {what}s: {names}")
        pairs[name] = path
    return pairs


def _load_model(path: str, params: RillParams, device_only: bool = False):
    """An ONNX or TFLite model by its file's suffix (a TFLite model lowered for a core of
    ``params``), or a :class:`UsageError` saying why not; ``device_only`` refuses one that
    needs the host for more than quantizing and moving data."""
    if not Path(path).exists():
        raise UsageError(f"{path}: no such file; give the path of a quantized .onnx model or a "
                         "full-integer .tflite model")
    if Path(path).suffix.lower() == ".tflite":
        from .tflite_import import TfliteImportError, TfliteModel
        from .tflite_reader import InvalidTflite
        try:
            model = TfliteModel.load(path, params)
        except (TfliteImportError, InvalidTflite) as error:
            raise UsageError(str(error)) from None
        if device_only and model.host_operators():
            raise UsageError(f"--device-only: these would run on the host: "
                             f"{', '.join(model.host_operators())}")
        return model, (TfliteImportError, InvalidTflite)
    from .onnx_import import ModelImportError, RillModel
    try:
        return RillModel.load(path, device_only=device_only), (ModelImportError,)
    except ModelImportError as error:
        raise UsageError(str(error)) from None


def cmd_run(args) -> int:
    import numpy as np

    from .device import open_device
    from .resident import streamed_summary
    params = params_from(args)
    model, import_errors = _load_model(args.model, params, args.device_only)
    tflite = Path(args.model).suffix.lower() == ".tflite"
    compare = args.compare or ""
    if compare and (compare == "litert") != tflite:
        checks = ".tflite" if compare == "litert" else ".onnx"
        raise UsageError(f"--compare {compare} checks {checks} models; use --compare "
                         f"{'litert' if tflite else 'onnxruntime'}")
    if tflite or args.report:
        print("where each operator runs:\n" + "\n".join(model.placement_lines()),
              file=sys.stderr)
    inputs = _name_path_pairs(args.input, model.input_names, "input")
    missing = set(model.input_names) - set(inputs)
    if missing:
        raise UsageError(f"missing --input for {sorted(missing)}")
    outputs = _name_path_pairs(args.output, model.output_names, "output")
    for path in outputs.values():
        check_writable(path, "--output")
    feeds = {name: load_array(path, name) for name, path in inputs.items()}
    options = device_options(args)

    def progress(layer, index, total):
        print(f"[{index + 1}/{total}] {layer} on {args.device}", file=sys.stderr, flush=True)

    # --device-only: the vector unit's steps run on the device even as calls of their own.
    vector = {"vector_calls": True} if tflite and args.device_only else {}
    with open_device(args.device, params, **options) as device:
        try:
            results = model.run(device, feeds, progress=progress, resident=args.resident,
                                **vector)
        except import_errors as error:
            raise UsageError(str(error)) from None
        streamed = streamed_summary(
            device.resident.allocation,
            [layer.compiled(device.params) for layer in model.model.layers]
        ) if args.resident else None
    if streamed:
        print(streamed, file=sys.stderr)
    off_chip = model.model.vector_on_host if tflite else []
    if off_chip:
        print(f"computed on the host in the vector unit's arithmetic (inputs and output on the "
              f"host, outside any stretch run on chip): {', '.join(off_chip)}", file=sys.stderr)
    for name, path in outputs.items():
        np.save(path, results[name])
        print(f"wrote {path}: {name} {results[name].dtype} {list(results[name].shape)}")
    predicted = sum(lp.predicted_cycles for lp in model.programs)
    print(f"{len(model.programs)} device program(s), {predicted} predicted cycles")
    for line in getattr(model, "runtime_lines", list)() if args.report else ():
        print(line)   # run-time-operand layers: compiles, cache hits, times
    if compare:
        if compare == "litert":
            from .litert_oracle import ReferenceCannotCheck, compare_with_litert
            try:
                comparison = compare_with_litert(args.model, feeds, results)
            except ReferenceCannotCheck as error:
                raise UsageError(f"--compare litert: {error}") from None
        else:
            from .oracle import compare_with_onnxruntime
            comparison = compare_with_onnxruntime(args.model, feeds, results)
        print("\n".join(comparison.lines()))
        return 0 if comparison.device_is_right else 1
    return 0


def cmd_selftest(args) -> int:
    from .device import BOARD_URLS
    from .selftest import run_selftest
    board = args.device.startswith(BOARD_URLS)
    expected = None if board and args.board_params is None and args.rows is None \
        and args.cols is None else params_from(args)
    print(f"self-test of {args.device}"
          + ("" if expected is None else f", expecting a {expected.rows}x{expected.cols} core")
          + ":", flush=True)
    verdicts = run_selftest(args.device, expected, seed=args.seed,
                            options=device_options(args))
    for verdict in verdicts:
        print("\n".join(verdict.lines()), flush=True)
    failed = sum(v.ok is False for v in verdicts)
    print(f"{len(verdicts) - failed - sum(v.ok is None for v in verdicts)} passed, {failed} failed"
          + (f", {sum(v.ok is None for v in verdicts)} skipped"
             if any(v.ok is None for v in verdicts) else ""))
    return 1 if failed else 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(params_from(args), device=args.device, **device_options(args))


def cmd_info(args) -> int:
    from hw import isa
    from hw.isa import Opcode
    params = params_from(args)
    program = isa.encode(Opcode.INFO) + isa.encode(Opcode.READ_COUNTERS)
    info_end = isa.RESPONSE_HEADER_BYTES + isa.INFO_BYTES
    (response,) = executor(args.device, params, device_options(args))(
        [("info", program, info_end + isa.RESPONSE_HEADER_BYTES + 16)])
    device_params, version = RillParams.from_info_bytes(response[4:info_end])
    tag = int.from_bytes(response[info_end - 2:info_end], "little")
    print(f"device: {args.device}  ISA v{version}  program tag {tag:#06x}"
          + (" (none loaded)" if tag == 0 else ""))
    fields = vars(device_params)
    width = max(map(len, fields)) + 2
    for name, value in fields.items():
        print(f"  {name:<{width}}{value}")
    print(f"  peak MACs/cycle: {device_params.peak_macs_int8} INT8, "
          f"{device_params.peak_macs_int4} INT4")
    p = device_params
    print(f"  holds: {p.weight_capacity(False):,} int8 weights ({p.weight_capacity(True):,} "
          f"int4), {p.act_capacity(False):,} activations in INT8 mode "
          f"({p.act_capacity(True):,} in INT4 mode), {p.acc_depth:,} x {p.cols} int32 "
          f"accumulators, {p.qparam_depth:,} requantization entries, "
          f"{p.program_depth:,} program instructions")
    left_out = [name for name, present in (
        ("STORE to the activation SRAM (layers chain through the host)", p.store_to_acts),
        ("program memory (instructions travel with every call)", p.program_depth),
        ("convolutions addressed on the device (im2col on the host)", p.conv_addressing),
        ("packed INT8 activations (an INT8 word holds one K chunk)", p.packed_int8_acts),
        ("vector unit (residual adds and pooling on the host)", p.vector_unit))
        if not present]
    if left_out:
        print("  left out on this part: " + ", ".join(left_out))
    counters = [int.from_bytes(response[info_end + 4 + 4 * i:info_end + 8 + 4 * i], "little")
                for i in range(4)]
    for name, value in zip(isa.COUNTER_NAMES, counters):
        print(f"  counter {name:<13}{value}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sw", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None,
                        help=f"array rows of the device to simulate (default {RillParams.rows}; "
                        "a board's own, which it reports)")
    parser.add_argument("--cols", type=int, default=None,
                        help=f"array columns (default {RillParams.cols}; a board's own)")
    parser.add_argument("--board-params", metavar="BOARD", default=None,
                        help="the core BOARD's bitstream carries (array, SRAM depths, "
                        "requantizer, pipeline; see python -m hw.build --list), e.g. to simulate "
                        "it: --board-params icebreaker ... --device sim")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a quantized ONNX or TFLite model and save its output "
                       "as .npy",
                       description="Run a quantized ONNX model (from onnxruntime's "
                       "quantize_static, QDQ or QOperator) or a full-integer int8 TFLite model "
                       "(the TFLite converter's recipe) on a Rill device. The output is exactly "
                       "what onnxruntime, or LiteRT's reference kernels, produce: same values, "
                       "dtype and shape. For a .tflite model it first lists where each operator "
                       "runs (device or host) on stderr.")
    p.add_argument("model", metavar="MODEL.onnx|MODEL.tflite")
    p.add_argument("--input", action="append", required=True, metavar="[NAME=]X.npy",
                   help="input tensor; NAME= is needed when the model has several inputs")
    p.add_argument("--output", action="append", required=True, metavar="[NAME=]Y.npy",
                   help="where to write the output tensor")
    add_device_options(p)
    p.add_argument("--compare", choices=["onnxruntime", "litert"], default=None, help="also run "
                   "the model's reference (onnxruntime for .onnx, LiteRT's reference kernels for "
                   ".tflite) on this CPU and say whether its outputs equal the device's; where "
                   "they differ, whose answer is wrong (exit status 1 when it is the device's)")
    p.add_argument("--report", action="store_true", help="first list on stderr where each node "
                   "runs and the device's share of the MACs (always done for .tflite)")
    p.add_argument("--device-only", action="store_true", help="refuse a model that needs the "
                   "host beyond quantizing and moving data, naming the nodes (by default they "
                   "run on the host, through onnxruntime for .onnx)")
    p.add_argument("--resident", action="store_true", help="load the weights that fit first and "
                   "run what the core can on chip: layers chained through the activation SRAM, "
                   "residual blocks, pooling and classifier as one call (the maps between them "
                   "never cross the link)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("selftest", help="check a device step by step (board bring-up)",
                       description="Check a device step by step, a verdict line each: the link "
                       "answers; it speaks this driver's ISA with the expected params (a board's "
                       "own unless --board-params NAME or --rows/--cols say otherwise); every "
                       "byte value crosses the link both ways; one GEMM per precision equals the "
                       "golden model's answer byte for byte, cycle counters included; a refused "
                       "command leaves the device answering; the link counted no errors. A "
                       "failing step says its likely cause. Exit status 1 when a step fails.")
    add_device_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random GEMMs (default 0)")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("demo", help="run GEMMs on the simulated RTL and check them bit for bit")
    add_device_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="measure utilization, cycles vs prediction and wire bytes")
    add_device_options(p)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also plot utilization against GEMM size")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="also stream a layer through the core and link RTL over a UART-paced "
                        "wire and report end-to-end throughput and wire bytes (sim only; "
                        "a few minutes); default on")
    p.add_argument("--tflite", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the four MLPerf Tiny architectures (int8 TFLite) at batch 1 "
                   "with their weights resident: device cycles, array utilization, latency at "
                   "each board's clock beside published anchors; default on")
    p.add_argument("--models", action=argparse.BooleanOptionalAction, default=True,
                   help="also run whole models (the demo's conv net and an autoencoder shaped "
                        "like MLPerf Tiny's anomaly detection, batch 1 and 32) and bound their "
                        "inferences per second on each board's serial link; default on")
    p.add_argument("--links", nargs="+", default=["icebreaker", "ulx3s-85f"], metavar="BOARD",
                   help="the boards whose links bound the whole models (default: icebreaker "
                        "ulx3s-85f)")
    p.add_argument("--cycles-per-byte", type=int, default=None, metavar="N",
                   help="the paced wire's cycles per byte each way (default 120: 3 Mbaud at "
                        "36 MHz)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="print the device's params and counters")
    add_device_options(p)
    p.set_defaults(func=cmd_info)

    args = parser.parse_args(argv)
    if args.board_params is not None:
        try:
            board_params(args.board_params)
        except UsageError as error:
            parser.error(str(error))
    from .device import DeviceError
    try:
        return args.func(args)
    except (UsageError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
