"""Trace-driven simulation, the learning-to-partition gymnasium environment, and the evaluation
(ROS-free).

``traces`` (link and load over time), ``video`` (per-frame complexity and payload bytes measured
on real frames), ``scenarios`` (named setups), ``estimator`` (what the monitors would believe),
``simulator`` (frames through edge, link and cloud queues), ``world`` (profiles, cost models and
video assembled once, with ``l2p_ros.deployment``), ``env`` (gymnasium, its observation from
``l2p_ros.policies.observation``), ``training`` (PPO), ``evaluation`` and ``report`` (``l2p evaluate``).
"""
