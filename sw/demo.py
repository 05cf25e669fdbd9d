"""``python -m sw demo``: real quantized models and GEMMs on the simulated RTL.

1. A digits MLP and a small conv net, trained here on ``sklearn.datasets.load_digits`` (fixed
   seed), quantized by onnxruntime's ``quantize_static``, run on the whole test split: float vs
   int8 accuracy, agreement with onnxruntime's exact integer result (:mod:`sw.oracle`; must be
   100%), cycles measured vs predicted.
2. The same models one image at a time with their weights resident on the device: cycles per
   image (measured = predicted), bytes each way, and the latency they mean on each board.
3. Two MLPerf Tiny architectures as int8 TFLite models, and a small residual network resident
   whole on chip, against LiteRT's reference kernels.
4. ResNet-, MobileNet- and transformer-style models quantized by onnxruntime (static and
   dynamic), split between the device and onnxruntime on the host, against onnxruntime.
5. GEMMs checked byte for byte against the golden model, with their array utilization.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.isa import Config, OutType, Precision, Rounding
from hw.params import RillParams

from .bench import counter_read_cost, split_timed_response, timed_gemm_program
from .golden import GoldenCore
from .qparams import random_qparams

__all__ = ["run_demo"]

_GEMMS = ((Precision.INT8, (64, 64, 64), Rounding.ONNX),
          (Precision.INT4, (64, 64, 64), Rounding.TFLITE),
          (Precision.INT8, (37, 50, 29), Rounding.ONNX))


def _say(text: str = ""):
    print(text, flush=True)


def _single_output(outputs: dict[str, np.ndarray]) -> np.ndarray:
    (value,) = outputs.values()
    return value


def _models_demo(device, folder: Path) -> int:
    import logging

    from . import oracle
    from .models import quantize, train_conv, train_mlp
    from .onnx_import import RillModel
    logging.getLogger().setLevel(logging.ERROR)   # quantize_static's pre-processing advice
    read_cost = counter_read_cost(device.params)
    failures, models = 0, []
    _say(f"  {'model':<34}{'float acc':>10}{'int8 acc':>10}{'= ORT':>8}{'cycles':>10}"
         f"{'predicted':>11}{'array busy':>12}")
    for train, per_channel in ((train_mlp, True), (train_conv, False)):
        float_model = train()
        path = quantize(float_model, folder, per_channel=per_channel)
        x, labels = float_model.test_inputs, float_model.test_labels
        feeds = {float_model.input_name: x}
        # The float model only gives the accuracy to compare with: onnxruntime as it is.
        float_acc = np.mean(_single_output(oracle.onnxruntime_run(
            folder / f"{float_model.name}-float.onnx", feeds)).argmax(1) == labels)
        expected = _single_output(oracle.run(path, feeds))
        model = RillModel.load(path)
        before = device.read_counters()
        got = model.run(device, {model.input_names[0]: x},
                        progress=lambda name, i, n: print(f"    layer {i + 1}/{n}: {name}",
                                                          file=sys.stderr, flush=True))
        after = device.read_counters()
        (got,) = got.values()
        cycles = after["cycles"] - before["cycles"] - read_cost
        busy = after["busy"] - before["busy"]
        predicted = sum(model.predicted_cycles().values())
        agree = np.mean(np.all(got == expected, axis=1))
        name = f"{float_model.name} ({'per-channel' if per_channel else 'per-tensor'}, " \
               f"{len(x)} images)"
        _say(f"  {name:<34}{float_acc:>10.1%}{np.mean(got.argmax(1) == labels):>10.1%}"
             f"{agree:>8.0%}{cycles:>10}{predicted:>11}{busy / cycles:>12.1%}")
        failures += (agree != 1.0) + (cycles != predicted)
        models.append((float_model, model, path))
    _say("  (array busy: share of cycles the array takes a row; the rest is the byte link "
         "loading weights and activations)")
    return failures, models


#: Images run one at a time in the batch-1 part of the demo.
_SINGLE_IMAGES = 8


def _latency_demo(device, models) -> int:
    """Each model at batch 1 with its weights resident: per image, the device's cycles (= the
    prediction), the bytes each way, and what they take on each board (its clock and link)."""
    from . import oracle
    from .bench_models import board_links
    links = board_links(["icebreaker", "ulx3s-85f"])
    _say(f"  {'model':<12}{'resident':>20}{'cycles':>9}{'predicted':>11}{'bytes in':>10}"
         f"{'out':>6}" + "".join(f"{f'{p.name} @ {p.clock_hz / 1e6:g} MHz':>34}"
                                 for p in links))
    failures = 0
    read_cost = counter_read_cost(device.params)
    for float_model, model, path in models:
        model.run(device, {model.input_names[0]: float_model.test_inputs[:1]}, resident=True)
        images = float_model.test_inputs[1:1 + _SINGLE_IMAGES]
        # Rows are independent: one onnxruntime run answers for every image.
        expected = _single_output(oracle.run(path, {model.input_names[0]: images}))
        stats, cycles, sent, received = device.host.stats, [], [], []
        for image, want in zip(images, expected):
            before, b_in, b_out = device.read_counters()["cycles"], stats.wire_bytes_sent, \
                stats.wire_bytes_received
            got = model.run(device, {model.input_names[0]: image[None]}, resident=True)
            sent.append(stats.wire_bytes_sent - b_in)   # before the counters' own bytes
            received.append(stats.wire_bytes_received - b_out)
            cycles.append(device.read_counters()["cycles"] - before - read_cost)
            failures += not np.array_equal(_single_output(got)[0], want)
        predicted = sum(model.predicted_cycles().values())
        failures += cycles[-1] != predicted
        allocation = device.resident.allocation
        chained = sum(len(chain) for chain in allocation.chains.values())
        where = f"{len(allocation.residences)}/{len(model.layers)}" + \
            (f", {chained} chained" if chained else "")
        b_in, b_out = int(np.mean(sent)), int(np.mean(received))
        shown = []
        for pace in links:
            compute_us = cycles[-1] / pace.clock_hz * 1e6
            link_us = max(b_in, b_out) * pace.cycles_per_byte / pace.clock_hz * 1e6
            shown.append(f"{f'{compute_us:,.0f} us core, {link_us:,.0f} us link':>34}")
        _say(f"  {float_model.name:<12}{where:>20}{cycles[-1]:>9}{predicted:>11}{b_in:>10}"
             f"{b_out:>6}" + "".join(shown))
    _say("  (per image, the weights that fit loaded once, chained layers run by one RUN from "
         "the program memory; core: its working cycles at the board's clock; link: the bytes "
         "of the busier direction at 3 Mbaud)")
    return failures


#: Inputs per TFLite model in the demo.
_TFLITE_IMAGES = 4


def _tflite_demo(device) -> int:
    """Two MLPerf Tiny architectures as int8 TFLite models (test assets of a checkout), checked
    against LiteRT's reference kernels; where each operator ran."""
    from .bench_tflite import ASSETS
    from .litert_oracle import litert_run
    from .tflite_import import TfliteModel
    # The small residual network resident: whole on chip in one call per batch.
    names = [name for name in ("ds_cnn", "resnet8", "residual_tiny")
             if (ASSETS / f"{name}.tflite").exists()]
    if not names:
        _say("  (no TFLite models here: they are tests/assets/tflite in a checkout)")
        return 0
    _say(f"  {'model':<14}{'= LiteRT':>8}{'cycles':>10}{'predicted':>11}{'MACs on device':>16}"
         "  on the host")
    failures = 0
    for name in names:
        path = ASSETS / f"{name}.tflite"
        model = TfliteModel.load(path)
        feeds = {model.input_names[0]: np.load(ASSETS / f"{name}_inputs.npy")[:_TFLITE_IMAGES]}
        resident = name == "residual_tiny"
        if resident:   # the first call loads the weights
            model.run(device, feeds, resident=True)
        before = device.read_counters()["cycles"]
        got = model.run(device, feeds, resident=resident)
        cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
        want = litert_run(path, feeds)
        same = sum(int(np.array_equal(got[k][i], v[i])) for k, v in want.items()
                   for i in range(len(v)))
        predicted = sum(model.predicted_cycles().values())
        on_device, macs = model.macs()
        _say(f"  {name:<14}{f'{same}/{_TFLITE_IMAGES}':>8}{cycles:>10}{predicted:>11}"
             f"{on_device / macs:>16.1%}  {', '.join(model.host_operators())}"
             + ("  (resident, one call)" if resident else ""))
        failures += (same != _TFLITE_IMAGES) + (cycles != predicted)
    return failures


#: Inputs each model family runs in the demo, and its quantizations.
_FAMILY_IMAGES = 16
_FAMILY_RUNS = (("residual_cnn", "static QDQ int8"), ("depthwise_cnn", "static QOperator uint8"),
                ("transformer_encoder", "static QDQ int8"), ("transformer_encoder", "dynamic"))


def _families_demo(device, folder: Path) -> int:
    """ResNet-, MobileNet- and transformer-style models quantized by onnxruntime, split between
    the device and onnxruntime on the host, against onnxruntime's result for the whole model."""
    from . import oracle
    from .model_families import FAMILIES, quantize_dynamic
    from .models import quantize
    from .onnx_import import RillModel
    _say(f"  {'model':<42}{'= ORT':>7}{'device MACs':>13}{'host nodes':>12}{'programs':>10}")
    failures = 0
    for family, how in _FAMILY_RUNS:
        fm = FAMILIES[family]()
        path = quantize_dynamic(fm, folder) if how == "dynamic" else quantize(
            fm, folder, quant_format=how.split()[1],
            activation_type="QInt8" if how.endswith("int8") else "QUInt8",
            calibration_samples=100)
        model = RillModel.load(path)
        feeds = {fm.input_name: fm.test_inputs[:_FAMILY_IMAGES]}
        got, want = model.run(device, feeds), oracle.run(path, feeds)
        same = sum(all(np.array_equal(got[k][i], v[i]) for k, v in want.items())
                   for i in range(_FAMILY_IMAGES))
        share = model.placement_lines()[-1].split("(")[-1].rstrip(")")
        _say(f"  {f'{family} ({how})':<42}{f'{same}/{_FAMILY_IMAGES}':>7}{share:>13}"
             f"{len(model.host_nodes):>12}{len(model.programs):>10}")
        failures += same != _FAMILY_IMAGES
    _say("  (python -m sw run MODEL.onnx --report lists where each node runs)")
    return failures


def _gemm_demo(device) -> int:
    params = device.params
    rng = np.random.default_rng(2026)
    failures = 0
    _say(f"  {'GEMM':<38}{'result':<11}{'MATMUL cycles':>14}{'predicted':>11}"
         f"{'utilization':>13}")
    for precision, (m, k, n), rounding in _GEMMS:
        lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
        acts, weights = rng.integers(-128, 128, (m, k)), rng.integers(lo, hi, (k, n))
        config = Config(precision, rounding, relu=True, out_type=OutType.INT8)
        prog, predicted = timed_gemm_program(params, acts, weights, config,
                                             random_qparams(rng, n, rounding, k))
        got = device.execute(prog.to_bytes(), prog.response_bytes)
        # A fresh golden model per GEMM: each program loads all it uses, so only the counters
        # (not compared here) depend on what ran before.
        expected = GoldenCore(params).feed(prog.to_bytes())
        cycles, _, result = split_timed_response(prog, got, m, n)
        _, _, expected_result = split_timed_response(prog, expected, m, n)
        same = result == expected_result
        peak = params.peak_macs_per_cycle(precision == Precision.INT4)
        name = f"{precision.name} {m}x{k}x{n}, {rounding.name.lower()} rounding, ReLU"
        _say(f"  {name:<38}{'bit-exact' if same else 'MISMATCH':<11}{cycles:>14}{predicted:>11}"
             f"{m * k * n / (cycles * peak):>13.1%}")
        failures += (not same) + (cycles != predicted)
    return failures


def run_demo(params: RillParams, device: str = "sim", **device_options) -> int:
    """The demo on ``device``; ``device_options`` as :func:`sw.device.open_device` takes them
    (the sim device's ``trace``)."""
    from .device import open_device
    start = time.monotonic()
    _say(f"Rill {params.rows}x{params.cols} core on device '{device}' "
         f"(peak {params.peak_macs_int8} INT8 / {params.peak_macs_int4} INT4 MACs per cycle)")
    with open_device(device, params, **device_options) as dev, \
            tempfile.TemporaryDirectory() as folder:
        from .oracle import choice
        _say("\nDigits models quantized by onnxruntime, whole test split on the device:")
        _say(f"  (= ORT: agreement with onnxruntime's exact integer result, from {choice()})")
        failures, models = _models_demo(dev, Path(folder))
        _say("\nOne image at a time, weights resident (checked against onnxruntime's exact "
             "result):")
        failures += _latency_demo(dev, models)
        _say(f"\nMLPerf Tiny architectures and a small residual network as int8 TFLite models, "
             f"{_TFLITE_IMAGES} inputs each, against LiteRT's reference kernels:")
        failures += _tflite_demo(dev)
        _say(f"\nModels onnxruntime quantizes, split between the device and onnxruntime on the "
             f"host, {_FAMILY_IMAGES} inputs each, against onnxruntime's whole-model result:")
        failures += _families_demo(dev, Path(folder))
        _say("\nGEMMs, compared byte for byte with the golden model:")
        failures += _gemm_demo(dev)
    if getattr(dev, "speed", None) is not None:
        speed = dev.speed
        _say(f"\nThe simulator ran {speed.cycles:,} cycles in "
             f"{speed.seconds - speed.host_wait_seconds:.1f} s ({speed.cycles_per_second:,.0f} "
             f"cycles/s) and waited {speed.host_wait_seconds:.1f} s for the host.")
    if device_options.get("trace"):
        _say(f"Waveform: {device_options['trace']}")
    _say(f"\n{'all checks passed' if not failures else f'{failures} check(s) FAILED'} in "
         f"{time.monotonic() - start:.0f} s. More: python -m sw bench --plot bench.png")
    return 1 if failures else 0
