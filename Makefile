# `make demo` and `make test` set up on first use; `make setup` alone is idempotent.
SHELL := /bin/bash
VENV := .venv
ACT := source $(VENV)/bin/activate &&
# Keep DDS on this machine: shared memory only (l2p_ros/nodes/fastdds_local.xml; every rclpy process the
# project starts also applies l2p_ros.nodes.dds.local_dds_env). LOCALHOST discovery range would add UDP;
# FASTDDS_BUILTIN_TRANSPORTS would replace the profile's 64 MB segment and lose large images.
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/l2p_ros/nodes/fastdds_local.xml
unexport FASTDDS_BUILTIN_TRANSPORTS ROS_AUTOMATIC_DISCOVERY_RANGE

.PHONY: setup demo demo-shaped test clean
setup:
	bash scripts/setup.sh

demo: setup
	$(ACT) l2p demo

# The demo on a kernel-shaped link across network namespaces (needs root; says why where unavailable).
demo-shaped: setup
	$(ACT) l2p demo --shaped-link --bottlenecks sample-scenes

test: setup
	$(ACT) python -m pytest -q test

clean:
	rm -rf build $(VENV)
