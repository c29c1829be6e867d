"""One deployment cost model for the partitioner and the simulator (``l2p_ros.deployment``), from the
profiles committed in models/profiles/: where each tier's profile came from is stated, a derived
profile is labelled, and the cost model predicts with exactly those profiles."""
from pathlib import Path

import numpy as np
import pytest

from l2p_ros.deployment import Deployment, build_cost_model
from l2p_ros.measure.profile import ProfileError, load_profile
from l2p_ros.policies.types import Partition, SystemState

PROFILES = Path(__file__).resolve().parents[1] / "models" / "profiles"
CPU = PROFILES / "yolov3-tiny-416-cpu-t1-vm-2core.yaml"
H200 = PROFILES / "yolov3-tiny-416-cuda-h200.yaml"
STATE = SystemState(bandwidth_mbps=20.0, rtt_ms=10.0)


def test_measured_cpu_edge_and_measured_h200_cloud():
    model, sources = build_cost_model(Deployment("yolov3-tiny", edge_profile=CPU, cloud_profile=H200), log=None)
    assert sources["cloud_profile"]["derived"] is False
    assert sources["cloud_profile"]["machine"]["gpu"] == "NVIDIA H200"  # which machine it was measured on
    assert sources["edge_profile"]["file"] == str(CPU) and sources["edge_profile"]["derived"] is False
    h200 = load_profile(H200)
    assert np.array_equal(model.cloud_layer_ms, [layer.latency_ms_median for layer in h200.layers])
    offload = model.predict(Partition(cut_after_layer=-1, codec="jpeg-q75"), STATE)
    assert offload.cloud_ms == pytest.approx(h200.total_ms)
    assert not model.has_fog


def test_derived_tiers_are_labelled_and_scaled_from_the_measured_edge():
    model, sources = build_cost_model(Deployment("yolov3-tiny", edge_profile=CPU, edge_speed_factor=0.5,
                                                 cloud_speed_factor=20.0, fog_speed_factor=4.0), log=None)
    measured = load_profile(CPU)
    assert model.edge_profile.machine["derived"] and sources["edge_profile"]["derived"]
    assert model.edge_profile.total_ms == pytest.approx(measured.total_ms * 2)  # half as fast
    assert model.cloud_profile.total_ms == pytest.approx(measured.total_ms / 20)  # from the MEASURED edge
    assert model.has_fog and sources["fog_profile"]["derived"]
    assert model.fog_profile.total_ms == pytest.approx(model.edge_profile.total_ms / 4)  # from the edge used
    assert sources["fog_profile"]["codec"] == "fp32"


def test_a_profile_of_another_model_is_refused():
    with pytest.raises(ProfileError, match="layers"):
        build_cost_model(Deployment("yolov3-tiny", edge_profile=CPU,
                                    cloud_profile=PROFILES / "yolov3-416-cuda-h200.yaml"), log=None)


@pytest.mark.parametrize("field, value", [("edge_speed_factor", 0.0), ("cloud_speed_factor", -1.0),
                                          ("fog_speed_factor", -2.0)])
def test_bad_speed_factors_name_themselves(field, value):
    with pytest.raises(ValueError, match=field):
        Deployment("yolov3-tiny", **{field: value})
