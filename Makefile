# `make demo` and `make test` set up on first use; `make setup` alone is idempotent.
SHELL := /bin/bash
VENV := .venv
ACT := source $(VENV)/bin/activate &&
# Keep DDS on this machine: shared memory only (see config/dds/README.md).
export FASTDDS_BUILTIN_TRANSPORTS := SHM
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo test bench clean
setup:
	bash scripts/setup.sh

demo: setup
	$(ACT) l2p demo

test: setup
	$(ACT) python -m pytest -q test

bench: setup
	$(ACT) python bench/run_all.py

clean:
	rm -rf build $(VENV)
