"""Test-session setup shared by every test module."""
import os

from l2p_ros.nodes.dds import use_local_dds

# Keep DDS on this machine for every rclpy process the tests start (they inherit this environment),
# and give this test session its own DDS domain so concurrent runs on one host never see each
# other's topics.
use_local_dds()
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
