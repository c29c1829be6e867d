"""rosbag2 bags written with rosbags (mcap and sqlite3): image replay through the frame source, and
our l2p_msgs messages recorded as rclpy CDR and read back."""
import time

import cv2
import numpy as np
import pytest

from l2p_ros.nodes.dds import use_local_dds

use_local_dds()  # before rclpy is imported anywhere in this process

pytest.importorskip("rclpy")
from l2p_msgs.msg import Detection, DetectionArray, DropCount, PartitionDecision, PipelineStats  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402

from l2p_ros.assets import SAMPLE_IMAGES, SAMPLE_VIDEO, asset_path  # noqa: E402
from l2p_ros.bag import (BagRecorder, deserialize, l2p_typestore, read_bag, ros_typestore,  # noqa: E402
                         write_image_bag)
from l2p_ros.sources import COMPRESSED_TYPE, IMAGE_TYPE, Frame, SourceError, open_source  # noqa: E402

STORAGES = ["mcap", "sqlite3"]
T0_S = 1_700_000_000.25  # recorded stamps well in the past, 0.1 s apart


@pytest.fixture(scope="module")
def frames():
    """4 real frames of the sample video (768x576) with recorded-looking stamps."""
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    images = [capture.read()[1] for _ in range(4)]
    capture.release()
    return [Frame(T0_S + 0.1 * i, "front_camera", image) for i, image in enumerate(images)]


def _image_cdr(image_bgr, stamp_ns: int, encoding: str = "bgr8", data: bytes | None = None) -> bytes:
    store = ros_typestore()
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id="cam")
    height, width = image_bgr.shape[:2]
    pixels = np.frombuffer(data if data is not None else image_bgr.tobytes(), np.uint8)
    msg = store.types[IMAGE_TYPE](header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                                  step=width * 3, data=pixels)
    return bytes(store.serialize_cdr(msg, IMAGE_TYPE))


@pytest.mark.parametrize("storage", STORAGES)
def test_image_bag_replays_identical_pixels_and_recorded_stamps(tmp_path, frames, storage):
    assert write_image_bag(tmp_path / "bag", frames, storage=storage) == 4
    source = open_source(tmp_path / "bag")
    replayed = list(source)
    assert len(replayed) == 4 and source.skipped == 0
    assert f"{IMAGE_TYPE}, 4 messages" in source.description
    for got, sent in zip(replayed, frames):
        assert got.frame_id == "front_camera"
        assert got.stamp_s == pytest.approx(sent.stamp_s, abs=1e-6)
        assert np.array_equal(got.image_bgr, sent.image_bgr)


@pytest.mark.parametrize("storage", STORAGES)
def test_compressed_image_bag_decodes(tmp_path, frames, storage):
    write_image_bag(tmp_path / "bag", frames, storage=storage, compressed=True, jpeg_quality=95)
    replayed = list(open_source(tmp_path / "bag"))
    assert len(replayed) == 4
    for got, sent in zip(replayed, frames):
        assert got.image_bgr.shape == sent.image_bgr.shape
        # JPEG is lossy: close, not identical.
        assert np.abs(got.image_bgr.astype(int) - sent.image_bgr).mean() < 3.0


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8", "rgba8"])
def test_every_raw_encoding_replays_as_bgr(tmp_path, encoding):
    image = cv2.imread(str(asset_path(SAMPLE_IMAGES[0])))
    write_image_bag(tmp_path / "bag", [Frame(T0_S, "cam", image)], encoding=encoding)
    (got,) = list(open_source(tmp_path / "bag"))
    expected = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) \
        if encoding == "mono8" else image
    assert np.array_equal(got.image_bgr, expected)


def test_storage_file_opens_directly_and_realtime_follows_recorded_timing(tmp_path, frames):
    write_image_bag(tmp_path / "bag", frames, storage="mcap")
    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    start = time.monotonic()
    replayed = list(open_source(mcap, realtime=True))
    # Recorded 0.1 s apart: 4 frames span 0.3 s in real time.
    assert len(replayed) == 4 and time.monotonic() - start >= 0.28


@pytest.mark.parametrize("storage", STORAGES)
def test_undecodable_messages_are_skipped_and_counted(tmp_path, frames, storage):
    image, stamp_ns = frames[0].image_bgr, 1_700_000_000 * 10**9
    with BagRecorder(tmp_path / "bag", storage) as recorder:
        recorder.write("/cam", IMAGE_TYPE, _image_cdr(image, stamp_ns), stamp_ns)
        recorder.write("/cam", IMAGE_TYPE, b"\x00\x01\x00\x00" + b"\xff" * 40, stamp_ns + 1)  # corrupt CDR
        recorder.write("/cam", IMAGE_TYPE, _image_cdr(image, stamp_ns + 2, data=image.tobytes()[:1000]),
                       stamp_ns + 2)  # pixels do not match the header
        recorder.write("/cam", IMAGE_TYPE, _image_cdr(image, stamp_ns + 3), stamp_ns + 3)
        store = ros_typestore()
        not_jpeg = store.types[COMPRESSED_TYPE](header=store.types["std_msgs/msg/Header"](
            stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam"),
            format="jpeg", data=np.frombuffer(b"definitely not a jpeg", np.uint8))
        recorder.write("/jpeg", COMPRESSED_TYPE, bytes(store.serialize_cdr(not_jpeg, COMPRESSED_TYPE)), stamp_ns)

    source = open_source(tmp_path / "bag", image_topic="cam")  # the leading slash is optional
    replayed = list(source)
    assert len(replayed) == 2 and source.skipped == 2
    assert all(np.array_equal(f.image_bgr, image) for f in replayed)
    source = open_source(tmp_path / "bag", image_topic="/jpeg")
    assert list(source) == [] and source.skipped == 1


def test_topic_selection_errors_list_the_image_topics(tmp_path, frames):
    image, stamp_ns = frames[0].image_bgr, 10**18
    with BagRecorder(tmp_path / "bag") as recorder:
        for topic in ("/left/image_raw", "/right/image_raw"):
            recorder.write(topic, IMAGE_TYPE, _image_cdr(image, stamp_ns), stamp_ns)
        recorder.write_message("/stats", PipelineStats(frames_in=3), stamp_ns)
    with pytest.raises(SourceError, match=r"several image topics.*'/left/image_raw', '/right/image_raw'") as error:
        open_source(tmp_path / "bag")
    assert error.value.parameter == "image_topic"
    with pytest.raises(SourceError, match=r"'/stats' is not in the bag.*/left/image_raw") as error:
        open_source(tmp_path / "bag", image_topic="/stats")
    assert error.value.parameter == "image_topic"
    assert len(list(open_source(tmp_path / "bag", image_topic="/right/image_raw"))) == 1

    with BagRecorder(tmp_path / "no_images") as recorder:
        recorder.write_message("/stats", PipelineStats(frames_in=3), stamp_ns)
    with pytest.raises(SourceError, match=r"no sensor_msgs/msg/Image.*/stats \(l2p_msgs/msg/PipelineStats\)"):
        open_source(tmp_path / "no_images")


def test_unsupported_encoding_fails_at_open(tmp_path, frames):
    stamp_ns = 10**18
    with BagRecorder(tmp_path / "bag") as recorder:
        recorder.write("/depth", IMAGE_TYPE, _image_cdr(frames[0].image_bgr, stamp_ns, encoding="16UC1"), stamp_ns)
    with pytest.raises(SourceError, match="'16UC1'") as error:
        open_source(tmp_path / "bag")
    assert error.value.parameter == "image_topic"


def _l2p_messages():
    detections = DetectionArray(frame_seq=41, model_id="yolov3-tiny-416", cut_after_layer=8, codec="int8-channel",
                                executed_on="edge+cloud")
    detections.header.stamp.sec, detections.header.stamp.nanosec = 1_700_000_000, 123_456_789
    detections.header.frame_id = "camera"
    detections.detections = [Detection(class_id=0, label="person", score=0.875, center_x=100.5, center_y=200.25,
                                       size_x=40.0, size_y=90.0),
                             Detection(class_id=2, label="car", score=0.5, center_x=300.0, center_y=50.0,
                                       size_x=120.0, size_y=60.0)]
    detections.timings.edge_ms, detections.timings.total_ms = 12.5, 80.25
    decision = PartitionDecision(frame_seq=41, policy="dads", cut_after_layer=8, fog_until_layer=-1, codec="fp16",
                                 predicted_total_ms=71.5, predicted_payload_bytes=350_000, bandwidth_mbps=20.0)
    stats = PipelineStats(frames_in=100, frames_detected=97, frames_dropped=3, latency_mean_ms=75.5,
                          latency_p95_ms=110.0, drops=[DropCount(reason="malformed_payload", count=1),
                                                       DropCount(reason="stale_frame", count=2)])
    return [("/l2p/detections", detections), ("/l2p/decision", decision), ("/l2p/stats", stats)]


@pytest.mark.parametrize("storage", STORAGES)
def test_recorder_round_trips_l2p_messages_serialized_by_rclpy(tmp_path, storage):
    messages = _l2p_messages()
    with BagRecorder(tmp_path / "out", storage) as recorder:
        for index, (topic, msg) in enumerate(messages):
            recorder.write(topic, f"l2p_msgs/msg/{type(msg).__name__}", serialize_message(msg), 1000 + index)
        recorder.write_message("/l2p/detections", messages[0][1], 2000)
    back = list(read_bag(tmp_path / "out"))
    assert [(m.topic, m.stamp_ns) for m in back] == [(t, 1000 + i) for i, (t, _) in enumerate(messages)] + \
        [("/l2p/detections", 2000)]
    for got, (_, sent) in zip(back, messages + messages[:1]):
        assert got.msgtype == f"l2p_msgs/msg/{type(sent).__name__}"
        assert deserialize(got.msgtype, got.cdr_bytes) == sent
    assert [m.topic for m in read_bag(tmp_path / "out", topics=["/l2p/stats"])] == ["/l2p/stats"]

    # The CDR is the same to rosbags: its own decoder, driven by the .msg definitions, reads rclpy's bytes.
    detections = l2p_typestore().deserialize_cdr(back[0].cdr_bytes, back[0].msgtype)
    assert [d.label for d in detections.detections] == ["person", "car"]
    assert detections.detections[0].center_y == 200.25 and detections.timings.total_ms == 80.25
    assert detections.header.stamp.nanosec == 123_456_789


def test_recorder_refuses_an_existing_path_and_a_second_type_on_a_topic(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        BagRecorder(tmp_path / "exists")
    with BagRecorder(tmp_path / "bag") as recorder:
        recorder.write_message("/l2p/stats", PipelineStats(), 1)
        with pytest.raises(ValueError, match="recorded as l2p_msgs/msg/PipelineStats"):
            recorder.write_message("/l2p/stats", DropCount(), 2)
        with pytest.raises(ValueError, match="unknown message type"):
            recorder.write("/x", "nobody_msgs/msg/Nothing", b"", 3)
