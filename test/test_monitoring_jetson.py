"""Jetson load from jetson-stats: conversion of recorded ``jtop().stats`` dicts and the optional reader."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from l2p_ros.monitoring.jetson import JetsonLoad, JtopReader, load_from_jtop_stats

FIXTURES = Path(__file__).parent / "fixtures"
FIELDS = ("cpu_percent", "memory_percent", "gpu_percent", "gpu_memory_percent", "gpu_power_w", "total_power_w")


def _stats(name: str) -> dict[str, Any]:
    """A fixture as jtop gives it: the "_" notes dropped."""
    recorded = json.loads((FIXTURES / f"jtop_stats_{name}.json").read_text())
    return {key: value for key, value in recorded.items() if not key.startswith("_")}


def _cores(stats: dict[str, Any]) -> list[str]:
    return [key for key in stats if key.startswith("CPU")]


def _all_nan(load: JetsonLoad) -> bool:
    return all(math.isnan(getattr(load, field)) for field in FIELDS)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


# --- conversion of recorded readings ---------------------------------------------------------------

def test_orin_recording_converts_with_units():
    stats = _stats("orin")
    # what makes the unit checks meaningful: RAM is a fraction, power in mW
    assert 0 < stats["RAM"] < 1 and stats["Power TOT"] > 1000
    load = load_from_jtop_stats(stats)
    cores = _cores(stats)
    assert len(cores) == 6 and all(isinstance(stats[core], int) for core in cores)
    assert load.cpu_percent == pytest.approx(sum(stats[core] for core in cores) / 6)
    assert load.memory_percent == pytest.approx(stats["RAM"] * 100)
    assert load.gpu_percent == pytest.approx(stats["GPU"])
    assert load.total_power_w == pytest.approx(stats["Power TOT"] / 1000)
    # Orin Nano feeds the GPU from VDD_CPU_GPU_CV together with the CPU: no GPU-only power
    assert "Power VDD_CPU_GPU_CV" in stats and math.isnan(load.gpu_power_w)
    assert math.isnan(load.gpu_memory_percent)  # shared RAM: jtop gives no GPU memory


def test_nano_reading_ignores_offline_cores_and_reads_the_gpu_rail():
    stats = _stats("nano")
    assert stats["CPU3"] == stats["CPU4"] == "OFF"
    load = load_from_jtop_stats(stats)
    assert load.cpu_percent == pytest.approx((stats["CPU1"] + stats["CPU2"]) / 2)
    assert load.memory_percent == pytest.approx(stats["RAM"] * 100)
    assert load.gpu_percent == pytest.approx(stats["GPU"])
    assert load.gpu_power_w == pytest.approx(stats["Power POM_5V_GPU"] / 1000)
    assert load.total_power_w == pytest.approx(stats["Power TOT"] / 1000)
    assert load.total_power_w > load.gpu_power_w > 0


def test_cores_switched_off_do_not_count():
    stats = _stats("orin")
    stats["CPU5"] = stats["CPU6"] = "OFF"  # what jtop writes for an offline core
    load = load_from_jtop_stats(stats)
    assert load.cpu_percent == pytest.approx(sum(stats[f"CPU{i}"] for i in range(1, 5)) / 4)


def test_all_cores_off_gives_nan():
    stats = _stats("nano")
    for core in _cores(stats):
        stats[core] = "OFF"
    assert math.isnan(load_from_jtop_stats(stats).cpu_percent)


@pytest.mark.parametrize("name", ["orin", "nano"])
def test_board_without_power_monitor_gives_nan_power(name):
    stats = _stats(name)
    without_power = {key: value for key, value in stats.items() if not key.startswith("Power ")}
    load, reference = load_from_jtop_stats(without_power), load_from_jtop_stats(stats)
    assert math.isnan(load.total_power_w) and math.isnan(load.gpu_power_w)
    for field in ("cpu_percent", "memory_percent", "gpu_percent"):
        assert getattr(load, field) == pytest.approx(getattr(reference, field))


def test_rail_keys_of_old_jetson_stats_give_nan_gpu_power_but_keep_the_total():
    # before 4.2.10 every rail key was named after the last temperature sensor
    stats = _stats("nano")
    rails = [key for key in stats if key.startswith("Power ") and key != "Power TOT"]
    last_rail = stats[rails[-1]]
    for key in rails:
        del stats[key]
    stats["Power thermal"] = last_rail
    load = load_from_jtop_stats(stats)
    assert math.isnan(load.gpu_power_w)
    assert load.total_power_w == pytest.approx(stats["Power TOT"] / 1000)


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


GARBAGE = [None, "abc", "", [], {}, True, math.nan, math.inf, -math.inf, 10 ** 400, "1e999", "nan", _Opaque()]
FIELD_OF_KEY = {"RAM": "memory_percent", "GPU": "gpu_percent", "Power TOT": "total_power_w",
                "Power POM_5V_GPU": "gpu_power_w", "CPU1": "cpu_percent"}


@pytest.mark.parametrize("key", FIELD_OF_KEY)
@pytest.mark.parametrize("value", GARBAGE, ids=lambda value: repr(value)[:24])
def test_garbage_value_gives_nan_for_its_field_only(key, value):
    stats = _stats("nano")
    reference = load_from_jtop_stats(stats)
    stats[key] = value
    load = load_from_jtop_stats(stats)
    assert math.isnan(getattr(load, FIELD_OF_KEY[key]))
    for field in FIELDS:
        if field != FIELD_OF_KEY[key]:
            assert _same(getattr(load, field), getattr(reference, field)), field


@pytest.mark.parametrize("key, value", [("RAM", 1.5), ("RAM", -0.1), ("GPU", 100.5), ("GPU", -1),
                                        ("CPU1", 101), ("CPU2", -3), ("Power TOT", -5), ("Power POM_5V_GPU", -1)])
def test_out_of_range_values_give_nan(key, value):
    stats = _stats("nano")
    stats[key] = value
    assert math.isnan(getattr(load_from_jtop_stats(stats), FIELD_OF_KEY.get(key, "cpu_percent")))


def test_numeric_strings_are_read():
    # a stats dict written to CSV (jtop's examples/jtop_logger.py) and read back holds strings
    stats = {key: str(value) for key, value in _stats("nano").items()}
    load, reference = load_from_jtop_stats(stats), load_from_jtop_stats(_stats("nano"))
    for field in FIELDS:
        assert _same(getattr(load, field), getattr(reference, field)), field


@pytest.mark.parametrize("stats", [{}, None, [], "CPU1", 42, {1: 2, None: "x"}])
def test_no_usable_stats_gives_all_nan(stats):
    assert _all_nan(load_from_jtop_stats(stats))


def test_two_gpu_only_rails_are_ambiguous():
    stats = _stats("nano")
    stats["Power VDD_GPU"] = 100
    assert math.isnan(load_from_jtop_stats(stats).gpu_power_w)


# --- the reader ----------------------------------------------------------------------------------

def test_reader_without_jetson_stats_warns_once_and_reads_none(monkeypatch):
    if importlib.util.find_spec("jtop") is not None:
        pytest.skip("jetson-stats is installed here")
    monkeypatch.delitem(sys.modules, "jtop", raising=False)
    messages: list[str] = []
    reader = JtopReader(warn=messages.append)
    assert [reader.read() for _ in range(3)] == [None, None, None]
    assert len(messages) == 1
    assert "jetson-stats" in messages[0] and "not installed" in messages[0]
    reader.close()
    assert reader.read() is None and len(messages) == 1


class _FakeClient:
    """Stands in for ``jtop.jtop``: start/ok/stats/close as jetson-stats documents them."""

    def __init__(self, script: dict[str, Any], interval: float = 1.0):
        self.script, self.interval = script, interval
        self.starts = self.closes = self.oks = 0
        script["clients"].append(self)

    def start(self) -> None:
        self.starts += 1
        if self.script.get("start_error"):
            raise self.script["start_error"]

    def ok(self, spin: bool = False) -> bool:
        assert spin, "the reader must not block waiting for a new sample"
        self.oks += 1
        if self.oks in self.script.get("ok_errors", {}):
            raise self.script["ok_errors"][self.oks]
        return True

    @property
    def stats(self) -> dict[str, Any]:
        return self.script["stats"][min(self.oks, len(self.script["stats"])) - 1]

    def close(self) -> None:
        self.closes += 1


def _fake_jtop(monkeypatch, **script: Any) -> dict[str, Any]:
    script["clients"] = []
    module = types.ModuleType("jtop")
    module.jtop = lambda interval=1.0: _FakeClient(script, interval)
    monkeypatch.setitem(sys.modules, "jtop", module)
    return script


def test_reader_starts_jtop_once_and_converts_each_sample(monkeypatch):
    idle, busy = _stats("orin"), _stats("nano")
    script = _fake_jtop(monkeypatch, stats=[idle, busy])
    messages: list[str] = []
    reader = JtopReader(warn=messages.append, interval_s=0.5)
    assert reader.read() == load_from_jtop_stats(idle)
    second = reader.read()
    assert second is not None and second.total_power_w == pytest.approx(busy["Power TOT"] / 1000)
    (client,) = script["clients"]
    assert client.starts == 1 and client.interval == 0.5 and messages == []
    reader.close()
    assert client.closes == 1 and reader.read() is None and len(script["clients"]) == 1


def test_reader_with_service_down_warns_once(monkeypatch):
    script = _fake_jtop(monkeypatch, stats=[_stats("orin")],
                        start_error=RuntimeError("The jtop.service is not active."))
    messages: list[str] = []
    reader = JtopReader(warn=messages.append)
    assert [reader.read() for _ in range(3)] == [None, None, None]
    assert len(messages) == 1 and "not running" in messages[0] and "jtop.service" in messages[0]
    (client,) = script["clients"]
    assert client.starts == 1 and client.closes == 1


def test_reader_that_loses_the_service_warns_once_and_stops(monkeypatch):
    script = _fake_jtop(monkeypatch, stats=[_stats("orin")], ok_errors={2: EOFError("socket closed")})
    messages: list[str] = []
    reader = JtopReader(warn=messages.append)
    assert isinstance(reader.read(), JetsonLoad)
    assert [reader.read() for _ in range(3)] == [None, None, None]
    assert len(messages) == 1 and "lost" in messages[0]
    (client,) = script["clients"]
    assert client.starts == 1 and client.closes == 1 and client.oks == 2


def test_the_load_sampler_takes_a_jetsons_gpu_and_board_power_from_jtop(monkeypatch):
    """No NVML on a Jetson (here: no NVIDIA driver at all), so the GPU load and power come from jtop."""
    from l2p_ros.monitoring.load import LoadSampler

    nano = _stats("nano")
    _fake_jtop(monkeypatch, stats=[nano, nano])
    sampler = LoadSampler(jetson=True, warn=lambda message: None)
    try:
        sample = sampler.sample()
    finally:
        sampler.close()
    expected = load_from_jtop_stats(nano)
    assert sample.gpu_percent == expected.gpu_percent and math.isfinite(sample.gpu_percent)
    assert sample.board_power_w == pytest.approx(nano["Power TOT"] / 1000)
    assert sample.gpu_power_w == pytest.approx(expected.gpu_power_w)
    without = LoadSampler(warn=lambda message: None)  # jetson off: nothing of jtop
    try:
        assert math.isnan(without.sample().board_power_w)
    finally:
        without.close()
