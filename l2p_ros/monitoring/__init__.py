"""Link and load monitoring (ROS-free).

``estimators`` smooths bandwidth and RTT observations into an estimate with its uncertainty;
``probe`` numbers probes and matches their echoes; ``load`` samples CPU, memory, GPU and RAPL
power; ``power`` is the power model and its calibration on measured samples; ``state`` assembles
the SystemState a policy sees from the monitors' reports. The ROS nodes in ``l2p_ros.nodes`` (network_monitor_node, load_monitor_node, probe_echo)
only translate messages to these.
"""
