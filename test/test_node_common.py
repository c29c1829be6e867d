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
