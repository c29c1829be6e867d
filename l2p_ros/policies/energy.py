"""The energy side of the cost model: each tier's power draw per phase of a frame.

Nominal values, labelled so in ``source``; the partitioner replaces the edge's with a fit on the
load monitor's RAPL/NVML samples (``l2p_ros.monitoring.power.PowerCalibrator``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PowerModel:
    """A device's power draw in each phase of a frame, watts.

    ``active_w`` while computing layers, ``transmit_w`` while sending, ``idle_w`` while waiting for
    the next tier. The defaults are nominal values for a Jetson-class vehicle computer, not
    measurements (``source`` says so); :class:`PowerCalibrator` fits measured ones from RAPL/NVML.
    """

    active_w: float = 15.0
    transmit_w: float = 7.0
    idle_w: float = 5.0
    source: str = "assumed"

    def energy_j(self, compute_ms, send_ms, wait_ms):
        """Joules for these phase durations (ms); floats or numpy arrays alike."""
        return (self.active_w * compute_ms + self.transmit_w * send_ms + self.idle_w * wait_ms) / 1e3


# Nominal, not measured: a fog of laptop/MEC class and a data-centre GPU board. Only their compute
# (and the fog's sending) is charged to a frame.
FOG_POWER = PowerModel(active_w=45.0, transmit_w=5.0, idle_w=0.0, source="assumed: laptop-class fog")
CLOUD_POWER = PowerModel(active_w=300.0, transmit_w=0.0, idle_w=0.0, source="assumed: data-centre GPU board")
