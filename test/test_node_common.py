"""Helpers every node shares: log lines that quote received input stay bounded."""
from l2p_ros.nodes.common import MAX_LOGGED_CHARS, bounded


def test_a_huge_rejected_input_is_cut_in_the_log_line_saying_how_much():
    edge_layers = list(range(100_000))  # what a hostile FeatureMap carried
    text = bounded(ValueError(f"invalid cut: {edge_layers}"))
    assert len(text) < MAX_LOGGED_CHARS + 60
    assert text.startswith("invalid cut: [0, 1, 2")
    assert text.endswith(f"({len(str(ValueError(f'invalid cut: {edge_layers}'))) - MAX_LOGGED_CHARS} more characters)")


def test_short_text_is_kept_whole():
    assert bounded("codec 'int9' unknown") == "codec 'int9' unknown"


def test_a_minimum_is_a_range_in_the_descriptor_and_a_named_error_below_it():
    """In-process node, no traffic: what `ros2 param describe` shows and what a value below it does."""
    import pytest

    from l2p_ros.nodes.dds import use_local_dds

    use_local_dds()
    import rclpy
    from rclpy.parameter import Parameter

    from l2p_ros.nodes.common import declare

    rclpy.init()
    try:
        node = rclpy.create_node("declare_test", parameter_overrides=[
            Parameter("depth", value=0), Parameter("wait_s", value=-2), Parameter("rate", value=-0.5),
            Parameter("mode", value="median")])
        assert declare(node, "ok_s", 1.5, "fine", minimum=0) == 1.5
        [descriptor] = node.describe_parameters(["ok_s"])
        assert descriptor.floating_point_range[0].from_value == 0.0
        assert node.set_parameters([Parameter("ok_s", value=-1.0)])[0].successful is False  # read-only anyway
        with pytest.raises(ValueError, match="parameter 'depth'=0 is invalid: must be >= 1"):
            declare(node, "depth", 4, "queue", minimum=1)
        # An integer given for a float parameter escapes rclpy's range check; ours still names it.
        with pytest.raises(ValueError, match="parameter 'wait_s'=-2.0 is invalid: must be >= 0"):
            declare(node, "wait_s", 0.1, "wait", minimum=0)
        with pytest.raises(ValueError, match="parameter 'rate'=-0.5 is invalid: must be >= 0"):
            declare(node, "rate", 1.0, "rate", minimum=0)
        assert declare(node, "ok_mode", "floor", "a mode", choices=("smoothed", "floor")) == "floor"
        with pytest.raises(ValueError, match="parameter 'mode'='median' is invalid: must be one of smoothed, floor"):
            declare(node, "mode", "floor", "a mode", choices=("smoothed", "floor"))
        node.destroy_node()
    finally:
        rclpy.shutdown()
