"""Edge power measured rather than assumed: a linear fit of RAPL/NVML power against utilisation.

``P = idle_w + (active_w - idle_w) * utilisation`` is the standard utilisation-based power model;
fitting it on the load monitor's own samples turns the cost model's assumed compute and idle watts
into measured ones. The radio's transmit power is not observable here and stays assumed.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from l2p_ros.policies.energy import PowerModel


class PowerCalibrator:
    """Collects (utilisation 0..1, power W) samples and fits idle and active watts.

    A fit needs ``min_samples`` samples spread over at least ``min_utilisation_spread`` of
    utilisation (otherwise the slope is not determined); only the last ``window`` samples count,
    so the model follows thermal or DVFS drift.
    """

    def __init__(self, min_samples: int = 20, min_utilisation_spread: float = 0.2, window: int = 600,
                 sensor: str = "RAPL"):
        self.min_samples = min_samples
        self.min_utilisation_spread = min_utilisation_spread
        self.sensor = sensor
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)

    def add(self, utilisation: float, power_w: float) -> None:
        """One sample; NaN or out-of-range values (an unreadable sensor) are ignored."""
        if math.isfinite(utilisation) and math.isfinite(power_w) and 0.0 <= utilisation <= 1.0 and power_w >= 0:
            self._samples.append((utilisation, power_w))

    def __len__(self) -> int:
        return len(self._samples)

    def model(self, base: PowerModel = PowerModel()) -> PowerModel | None:
        """``base`` with measured idle and active watts, or None while the samples cannot tell."""
        if len(self._samples) < self.min_samples:
            return None
        samples = np.asarray(self._samples)
        utilisation, power_w = samples[:, 0], samples[:, 1]
        if utilisation.max() - utilisation.min() < self.min_utilisation_spread:
            return None
        slope, idle_w = np.polyfit(utilisation, power_w, 1)
        active_w = idle_w + slope
        if idle_w < 0 or slope < 0:  # power falling with load: the samples are not this model's
            return None
        return PowerModel(active_w=float(active_w), transmit_w=base.transmit_w, idle_w=float(idle_w),
                          source=f"measured: {self.sensor} fit over {len(samples)} samples "
                                 f"(compute and idle); transmit assumed")
