"""ROS 2 nodes: thin adapters between messages and the core."""
