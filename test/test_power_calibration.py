"""A measured power model from utilisation/power samples (as RAPL or NVML give them)."""
import math

import numpy as np
import pytest

from l2p_ros.monitoring.power import PowerCalibrator
from l2p_ros.policies.energy import PowerModel


def test_recovers_idle_and_active_watts_from_noisy_samples():
    rng = np.random.default_rng(0)
    calibrator = PowerCalibrator(sensor="RAPL")
    for utilisation in rng.uniform(0.05, 0.95, 200):
        calibrator.add(float(utilisation), 4.0 + 11.0 * utilisation + float(rng.normal(0, 0.3)))
    model = calibrator.model(PowerModel(transmit_w=7.0))
    assert model.idle_w == pytest.approx(4.0, abs=0.2)
    assert model.active_w == pytest.approx(15.0, abs=0.3)
    assert model.transmit_w == 7.0 and model.source.startswith("measured: RAPL")


def test_no_model_until_the_samples_can_tell():
    calibrator = PowerCalibrator(min_samples=10)
    for _ in range(50):
        calibrator.add(0.5, 9.0)  # one utilisation only: the slope is not determined
    calibrator.add(math.nan, 9.0)
    calibrator.add(0.2, math.nan)  # an unreadable sensor
    assert len(calibrator) == 50
    assert calibrator.model() is None
    few = PowerCalibrator(min_samples=10)
    for u in (0.1, 0.9):
        few.add(u, 5 + 10 * u)
    assert few.model() is None


def test_samples_contradicting_the_model_give_no_model():
    calibrator = PowerCalibrator(min_samples=4)
    for u in (0.1, 0.4, 0.7, 0.9):
        calibrator.add(u, 20 - 10 * u)
    assert calibrator.model() is None
