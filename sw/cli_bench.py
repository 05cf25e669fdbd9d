"""``python -m sw bench``: GEMMs, streamed layers, whole models and the MLPerf Tiny
architectures measured on a device, their cycles against the prediction."""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path

from hw.params import RillParams

from .cli_common import UsageError, check_writable, device_options, executor, params_from

__all__ = ["cmd_bench"]


def board_links(names: list[str]):
    """:class:`~sw.bench_models.LinkPace` of each named board, or a usage error."""
    from .bench_models import board_links
    try:
        return board_links(names)
    except KeyError as error:
        raise UsageError(f"--links {error.args[0]}") from None


def _simulator_speed(kind, params: RillParams, speeds: list, record) -> dict | None:
    """The simulated device's cycles per second over the bench's GEMMs, beside the bare model's
    on the same cycles (a replay of the run, where the device kind offers one)."""
    if not speeds:
        return None
    speed, *streamed = speeds
    out = {"cycles": speed.cycles, "seconds": round(speed.seconds, 3),
           "host_wait_seconds": round(speed.host_wait_seconds, 3),
           "cycles_per_second": round(speed.cycles_per_second)}
    replay = getattr(kind, "replay_speed", None)
    if replay is not None and record is not None:
        ceiling = replay(params, record)
        out["bare_model_cycles_per_second"] = round(ceiling.cycles_per_second)
        out["of_bare_model"] = round(speed.cycles_per_second / ceiling.cycles_per_second, 3)
    if streamed:
        out["lockstep_cycles"] = sum(s.cycles for s in streamed)
        out["lockstep_cycles_per_second"] = round(
            sum(s.cycles for s in streamed) / sum(s.seconds for s in streamed))
    return out


def cmd_bench(args) -> int:
    from .bench import default_workloads, format_table, measure, plot, write_json
    from .device import device_kinds
    params = params_from(args)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            check_writable(path, option)
    links = board_links(args.links) if args.models else []   # refused before any work
    kind = device_kinds().get(args.device)
    kind = kind.load() if kind is not None else None
    speeds = []
    options = device_options(args)
    with tempfile.TemporaryDirectory(prefix="rill-bench-") as folder:
        # A simulated device records its run so that the bare model can replay the same cycles.
        record = None
        if getattr(kind, "replay_speed", None) is not None and "trace" not in options:
            record = options["record"] = Path(folder) / "run.record"
        rows = measure(params, default_workloads(params),
                       executor(args.device, params, options, speeds))
        print(format_table(params, rows))
        mismatched = [r.workload for r in rows if r.matmul_cycles != r.predicted_matmul_cycles
                      or r.program_cycles != r.predicted_program_cycles]
        if args.plot:
            plot(args.plot, params, rows)
            print(f"wrote {args.plot}")
        stream_rows = []
        # A device kind that can run the host and the RTL in lockstep offers ``run_paced``.
        run_paced = getattr(kind, "run_paced", None)
        if args.stream and run_paced is not None:
            from .bench_stream import UART_CYCLES_PER_BYTE, format_streaming, measure_streaming
            cycles_per_byte = args.cycles_per_byte or UART_CYCLES_PER_BYTE
            print(f"\nstreaming layers through the link RTL at {cycles_per_byte} cycles per "
                  f"byte (about a minute)...", flush=True)
            stream_rows = measure_streaming(params, partial(run_paced, on_speed=speeds.append),
                                            cycles_per_byte)
            print(format_streaming(stream_rows, cycles_per_byte))
            mismatched += [r.workload for r in stream_rows
                           if r.device_cycles != r.predicted_device_cycles]
        elif args.stream:
            print("\n(end-to-end streaming needs the RTL in lockstep with the host: --device sim)")
        model_rows = []
        if args.models:
            from .bench_models import bench_models, format_models
            from .device import open_device
            print("\nwhole models (the demo's conv net, an MLPerf Tiny autoencoder)...",
                  flush=True)
            with open_device(args.device, params) as device:
                model_rows = bench_models(device, links, Path(folder))
            print(format_models(model_rows))
            mismatched += [f"{r.model} batch {r.batch}" for r in model_rows
                           if r.device_cycles != r.predicted_cycles]
        tflite_rows = []
        if args.tflite:
            from .bench_tflite import bench_tflite, format_tflite
            from .device import open_device
            print("\nMLPerf Tiny architectures (int8 TFLite)...", flush=True)
            with open_device(args.device, params) as device:
                tflite_rows = bench_tflite(device, links or board_links(
                    ["icebreaker", "ulx3s-85f"]))
            print(format_tflite(tflite_rows) if tflite_rows else
                  "(no TFLite models here: they are tests/assets/tflite in a checkout)")
            mismatched += [r.model for r in tflite_rows
                           if r.device_cycles != r.predicted_cycles]
        simulator = _simulator_speed(kind, params, speeds, record)
    if simulator is not None:
        print(_format_simulator_speed(simulator))
    if args.json:
        write_json(args.json, params, rows, stream_rows, simulator=simulator,
                   models=model_rows, tflite=tflite_rows)
        print(f"wrote {args.json}")
    if mismatched:
        print(f"error: measured cycles differ from the prediction for {mismatched}",
              file=sys.stderr)
        return 1
    return 0


def _format_simulator_speed(speed: dict) -> str:
    lines = ["\nsimulator speed (simulated cycles per second of wall-clock time):",
             f"  sim device, the GEMMs above: {speed['cycles']:,} cycles in "
             f"{speed['seconds'] - speed['host_wait_seconds']:.1f} s = "
             f"{speed['cycles_per_second']:,} cycles/s (and {speed['host_wait_seconds']:.1f} s "
             f"idle, waiting for the host)"]
    if "bare_model_cycles_per_second" in speed:
        lines.append(f"  bare model replaying the same cycles (no socket, no host): "
                     f"{speed['bare_model_cycles_per_second']:,} cycles/s; the sim device runs "
                     f"at {speed['of_bare_model']:.0%} of it")
    if "lockstep_cycles" in speed:
        lines.append(f"  lockstep, the streaming layers: {speed['lockstep_cycles']:,} cycles at "
                     f"{speed['lockstep_cycles_per_second']:,} cycles/s")
    return "\n".join(lines)
