"""Partitioning policies and the cost model they share (ROS-free).

``types`` holds the interface (Partition, SystemState, Policy); ``cost_model`` predicts latency
and energy from profiles (two or three tiers, edge queueing included); ``payload_fit`` fits payload
bytes on frame complexity from real frames; ``dads`` and ``dnnsplit`` work on the layer DAG;
``baselines`` holds the simple policies, ``heuristic`` the bandwidth-threshold baseline, ``score``
the weighted energy/latency policy; ``registry`` builds any of them by name.
"""
