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
