"""Measuring (ROS-free): what a model costs on a machine and what it sends on real frames.

``profile`` is the profile type and its file format (no torch); ``models`` names a model (id,
cfg, weights label); ``profiler`` times layers on this machine; ``payloads`` is the one loop that
measures bytes on the wire on real frames; ``cache`` is where every measurement is kept and
re-measured when missing; ``host`` names the CPU a measurement ran on.
"""
