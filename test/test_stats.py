"""A stage's counters and the status it reports from them (ROS-free)."""
from l2p_ros.stats import (OK, WARN, DropWatch, StageStats, backlog_problems, camera_status, link_status,
                           stage_status)


def test_drops_are_reported_in_the_period_they_happen_then_ok_again():
    stats, watch = StageStats(), DropWatch()
    assert stage_status(watch.since_last(stats.snapshot()["drops"])) == (OK, "running")
    stats.drop("cloud_backlog")
    stats.drop("cloud_backlog")
    stats.drop("malformed_payload")
    level, message = stage_status(watch.since_last(stats.snapshot()["drops"]))
    assert level == WARN and "2 cloud_backlog" in message and "1 malformed_payload" in message
    assert stage_status(watch.since_last(stats.snapshot()["drops"])) == (OK, "running")  # nothing new
    stats.drop("malformed_payload")
    assert stage_status(watch.since_last(stats.snapshot()["drops"]))[1].endswith("1 malformed_payload")


def test_a_silent_next_tier_is_a_warning_whatever_the_drops():
    assert stage_status({}, next_tier_silent=True) == (WARN, "next tier silent: running locally")


def test_latency_per_minute_groups_by_stamp_from_the_first_frame():
    from l2p_ros.stats import latency_per_minute

    pairs = [(1000.0 + i, float(i % 60)) for i in range(150)]  # 2.5 minutes, 1 frame a second
    rows = latency_per_minute(pairs)
    assert [(r["minute"], r["frames"]) for r in rows] == [(0, 60), (1, 60), (2, 30)]
    assert rows[0]["p50_ms"] == 29.5 and rows[0]["max_ms"] == 59.0 and rows[2]["max_ms"] == 29.0
    assert latency_per_minute([]) == []


def test_frames_failing_on_the_stage_itself_are_an_error_and_every_problem_is_named():
    from l2p_ros.stats import ERROR

    assert stage_status({"cloud_error": 2, "malformed_payload": 1}) == (
        ERROR, "dropped frames in the last period: 2 cloud_error, 1 malformed_payload")
    assert stage_status({}, next_tier_silent=True, problems=["partitioner silent: running default_cut edge"]) == (
        WARN, "next tier silent: running locally; partitioner silent: running default_cut edge")


def test_a_load_sensor_that_breaks_is_a_warning_one_never_there_is_not():
    import math

    from l2p_ros.monitoring.load import LoadSample, SensorWatch

    nan = math.nan
    watch = SensorWatch()
    no_gpu = LoadSample(cpu_percent=20.0, memory_percent=40.0, gpu_percent=nan, gpu_memory_percent=nan,
                        gpu_power_w=nan, cpu_package_power_w=12.0)
    assert watch.status(no_gpu) == (OK, "running")
    power_gone = LoadSample(**{**no_gpu.__dict__, "cpu_package_power_w": nan})
    assert watch.status(power_gone) == (WARN, "stopped reading: cpu_package_power_w")
    blind = LoadSample(**{**no_gpu.__dict__, "cpu_percent": nan})
    assert watch.status(blind)[1].startswith("CPU load unreadable")


def test_a_full_queue_warns_before_frames_are_dropped():
    assert backlog_problems({"v0": 3, "v1": 4}, depth=4) == ["backlog: queue full (4 frames) for v1"]
    assert backlog_problems({"": 4}, depth=4) == ["backlog: queue full (4 frames) for the vehicle"]
    assert backlog_problems({"v0": 3}, depth=4) == []
    level, message = stage_status({}, problems=backlog_problems({"": 4}, 4))
    assert level == WARN and "backlog" in message


def test_the_camera_warns_when_it_falls_behind_or_skips_frames():
    assert camera_status(10.0, 9.8, published=50, new_skipped=0) == (OK, "running")
    assert camera_status(10.0, 3.0, published=2, new_skipped=0) == (OK, "running")  # starting up
    assert camera_status(10.0, 3.0, published=50, new_skipped=0) == (WARN, "publishing at 3.0 Hz, asked 10")
    assert camera_status(0.0, 3.0, published=50, new_skipped=0)[0] == OK  # as fast as it can: no target
    assert camera_status(10.0, 9.8, published=50, new_skipped=2) == (
        WARN, "skipped 2 undecodable frames in the last period")


def test_a_link_that_answers_but_measures_no_throughput_is_stale():
    assert link_status(False, 1.0, 10.0)[0] == WARN
    assert link_status(True, None, 10.0)[0] == OK
    assert link_status(True, 2.0, 10.0) == (OK, "link up")
    assert link_status(True, 25.0, 10.0) == (WARN, "link up, but the throughput estimate is 25 s old")
