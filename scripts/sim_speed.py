"""The sim device's speed against the bare model's on the same cycles: a stream of GEMMs through
the link, recorded and replayed (``python scripts/sim_speed.py [--size 16] [--gemms 5]``)."""

import argparse
import tempfile
import time
from pathlib import Path

from hw.isa import Precision
from hw.params import RillParams
from sim.harness import replay_speed
from sw.bench import Workload, bench_programs
from sw.device import open_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="array rows and columns (default 8)")
    parser.add_argument("--gemms", type=int, default=20, help="INT8 64x64x64 GEMMs (default 20)")
    args = parser.parse_args()
    params = RillParams(rows=args.size, cols=args.size)
    programs = bench_programs(params, [Workload(64, 64, 64, Precision.INT8)] * args.gemms)
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "run.record"
        device = open_device("sim", params, record=record)
        start = time.perf_counter()
        for _workload, program, _predicted in programs:
            device.execute(program.to_bytes(), program.response_bytes, program.frame_cuts())
        wall = time.perf_counter() - start
        device.close()
        bare = replay_speed(params, record)
    speed = device.speed
    print(f"{args.size}x{args.size}, {args.gemms} x INT8 64x64x64 through the link: "
          f"{speed.cycles:,} cycles; sim device {speed.cycles_per_second:,.0f} cycles/s "
          f"({speed.cycles / wall:,.0f} counting the host's time); bare model on the same "
          f"cycles {bare.cycles_per_second:,.0f} cycles/s; "
          f"{speed.cycles_per_second / bare.cycles_per_second:.0%}")


if __name__ == "__main__":
    main()
