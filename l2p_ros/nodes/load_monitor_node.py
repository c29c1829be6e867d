"""load_monitor_node: samples the edge computer's load and publishes EdgeLoad.

Every ``period_s`` it publishes ``l2p/edge_load`` (STATE_QOS) with CPU and memory (psutil), GPU
utilization, memory and power (NVML) and CPU package power (RAPL powercap), NaN where this machine
cannot read them, and the latest edge queue length received on ``l2p/edge/queue_length``
(std_msgs/UInt32, published by the edge node). The sampling is :mod:`l2p_ros.monitoring.load`.
"""
from __future__ import annotations

from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import UInt32

from l2p_msgs.msg import EdgeLoad
from l2p_ros.monitoring.load import CPU_SCOPES, DEFAULT_RAPL_ZONE, LoadSampler, SensorWatch, is_jetson
from l2p_ros.nodes.common import STATE_QOS, Diagnostics, LiveParameters, declare, parameter_error, positive, run_node


class LoadMonitorNode(Node):
    def __init__(self):
        super().__init__("load_monitor_node")
        live = LiveParameters(self)
        period_s = live.declare("period_s", 1.0, "Seconds between EdgeLoad messages; CPU percent and package power "
                                "are averages over this period. Live.", apply=self._set_period,
                                check=positive)
        gpu_index = declare(self, "gpu_index", 0, "NVML index of the GPU to report.", minimum=0)
        rapl_zone = declare(self, "rapl_zone", str(DEFAULT_RAPL_ZONE),
                            "powercap zone whose energy_uj counter gives the CPU package power.")
        cpu_scope = declare(self, "cpu_scope", "host",
                            "'host': CPU percent of all cores; 'limit': of this process's CPU limit (a "
                            "container's or the testbed edge's cgroup quota) taken by work other than the "
                            "edge node's, all cores where there is no limit (docs/testbed.md).", choices=CPU_SCOPES)
        jetson_stats = declare(self, "jetson_stats", "auto",
                               "read a Jetson's GPU load and board power through jetson-stats (jtop): 'auto' "
                               "(on a Jetson), 'on' or 'off'")
        if jetson_stats not in ("auto", "on", "off"):
            raise parameter_error(self, "jetson_stats", jetson_stats, "must be auto, on or off")

        use_jtop = jetson_stats == "on" or (jetson_stats == "auto" and is_jetson())
        self._sampler = LoadSampler(gpu_index, Path(rapl_zone), warn=self.get_logger().warning, cpu_scope=cpu_scope,
                                    jetson=use_jtop)
        self._sensor_watch = SensorWatch()
        self._queue_length = 0
        self._load = self.create_publisher(EdgeLoad, "l2p/edge_load", STATE_QOS)
        self.create_subscription(UInt32, "l2p/edge/queue_length", self._on_queue_length, STATE_QOS)
        self._diagnostics = Diagnostics(self)
        self._timer = self.create_timer(period_s, self._publish)

    def _set_period(self, period_s: float) -> None:
        self.destroy_timer(self._timer)
        self._timer = self.create_timer(period_s, self._publish)

    def _on_queue_length(self, msg: UInt32) -> None:
        self._queue_length = msg.data

    def _publish(self) -> None:
        sample = self._sampler.sample()
        msg = EdgeLoad(cpu_percent=sample.cpu_percent, memory_percent=sample.memory_percent,
                       gpu_percent=sample.gpu_percent, gpu_memory_percent=sample.gpu_memory_percent,
                       gpu_power_w=sample.gpu_power_w, cpu_package_power_w=sample.cpu_package_power_w,
                       board_power_w=sample.board_power_w,
                       queue_length=self._queue_length)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._load.publish(msg)
        level, message = self._sensor_watch.status(sample)
        self._diagnostics.update(level, message, cpu_percent=f"{sample.cpu_percent:.1f}", memory_percent=f"{sample.memory_percent:.1f}",
                                 queue_length=self._queue_length,
                                 unavailable="; ".join(self._sampler.unavailable) or "none")

    def destroy_node(self) -> None:
        self._sampler.close()
        super().destroy_node()


def main(args=None) -> None:
    run_node(LoadMonitorNode, args)


if __name__ == "__main__":
    main()
