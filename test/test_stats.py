"""A stage's counters and the status it reports from them (ROS-free)."""
from l2p_ros.stats import OK, WARN, DropWatch, StageStats, stage_status


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
