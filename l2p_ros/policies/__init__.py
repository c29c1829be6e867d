"""Partitioning policies and the cost model they share (ROS-free).

``types`` holds the interface (Partition, SystemState, Policy); ``cost_model`` predicts latency
and energy from profiles (two or three tiers, edge queueing included); ``observation`` is the
learned policy's input vector; ``dads`` and ``dnnsplit`` work on the layer DAG; ``baselines`` holds
the simple policies, ``heuristic`` the bandwidth-threshold baseline, ``score`` the weighted
energy/latency policy, ``learned`` a trained PPO policy run in numpy; ``registry`` builds any of them
by name. Deciding needs numpy (and networkx for DADS), never torch or the simulation.
"""
