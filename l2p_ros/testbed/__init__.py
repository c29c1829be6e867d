"""A multi-host testbed on one Linux machine: edge, fog and cloud in their own network namespaces,
joined by veth links whose bandwidth the kernel shapes (``tc tbf``), DDS over UDP across them only,
and an edge limited to a share of a CPU core (cgroup ``cpu``). Needs root; ROS-free.

- :mod:`.layout`: the namespaces, links and addresses (pure data).
- :mod:`.system`: running ``ip``/``tc`` and what is available on this machine.
- :mod:`.network`: ``up``, ``down``, ``status`` of the namespaces and links.
- :mod:`.shaping`: link rates, and replaying a bandwidth trace on a link in real time.
- :mod:`.cpu_limit`: the edge's CPU quota.
- :mod:`.dds_profile`: the Fast DDS profile of each namespace.
- :mod:`.placement`: how a process is started on a tier.
"""
