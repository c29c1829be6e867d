"""Partitioning policies and the cost model they share (ROS-free).

``types`` holds the interface (Partition, SystemState, Policy); ``cost_model`` predicts latency
and edge energy from profiles; ``dads`` and ``dnnsplit`` work on the layer DAG; ``baselines``
holds the simple policies.
"""
