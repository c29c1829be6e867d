"""GPU check: every split path on CUDA, detections against the CPU and fp16 against fp32, raw and
cloud-stage latency, and ONNX Runtime on the same model and input.

    PYTHONPATH=. python bench/bench_gpu.py --out gpu.json                 # a CUDA machine, ~2 min on an H200
    python bench/bench_gpu.py --device cpu --quick --out /tmp/gpu.json    # the same code paths, CPU dry run

Sections (all in the JSON written to --out, a summary table on stdout):
- ``detections``: yolov3-tiny (pretrained) on real frames (sample video + bundled images): the
  device in fp32, fp32 without TF32 and fp16 against the CPU in fp32, and fp16 against fp32 on the
  device. A detection matches when a one-to-one partner has the same class and IoU >= 0.9.
- ``split_paths``: detect, edge -> cloud at several cuts with every codec, and edge -> fog -> cloud,
  all on the device, checked against the CPU's detections; payloads decode onto the device.
- ``latency``: raw forward (CUDA events) at several batch sizes in fp32 and fp16, and the cloud stage
  (``SplitDetector.cloud``: decode + tail + post-processing, batch 1) beside it, for yolov3-tiny and
  yolov3 (random weights: latency only).
- ``onnxruntime``: the same yolov3-tiny exported with torch.onnx, run by ONNX Runtime's CPU and
  (where installed) CUDA providers on the same letterboxed frame, against ours.
No timed assertions: this measures and reports; mismatches show as match fractions below 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from l2p_ros import codec
from l2p_ros.assets import SAMPLE_IMAGES, SAMPLE_VIDEO, asset_path
from l2p_ros.model.cpu_conv import apply_activation
from l2p_ros.model.darknet import ConvLayer, Darknet, MaxPoolLayer, load_model
from l2p_ros.model.device import resolve_device, synchronize
from l2p_ros.model.graph import INPUT
from l2p_ros.model.matching import match_pairs
from l2p_ros.model.postprocess import letterbox, load_class_names
from l2p_ros.split import SplitDetector

IOU_MATCH = 0.9
# Random weights put ~490k (box, class) scores of YOLOv3-416 over 0.25: post-processing them would be
# timed instead of the model. Above this none pass (max 0.84 measured), as with few real objects.
RANDOM_WEIGHTS_SCORE_THRESHOLD = 0.99
TINY = "yolov3-tiny"
TINY_CUTS = ("cloud", "4", "8", "13", "16", "19", "edge")  # image offload, a spread, all on the edge
FOG_ROUTES = (("4", "13"), ("8", "19"), ("cloud", "8"))  # (edge cut, fog cut)
FOG_CODECS = ("fp32", "fp16+zstd", "int8-channel+zstd", "jpeg-q75")
SECTIONS = ("detections", "split_paths", "latency", "latency_yolov3", "onnxruntime")


def real_frames(count: int) -> list[tuple[str, np.ndarray]]:
    """The bundled images and frames spread evenly over the sample video: ``count`` in all."""
    frames = [(name, cv2.imread(str(asset_path(name)))) for name in SAMPLE_IMAGES][:count]
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = count - len(frames)
    picks = {int(i * total / wanted) for i in range(wanted)} if wanted > 0 else set()
    index = 0
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index in picks:
            frames.append((f"{SAMPLE_VIDEO}#{index}", frame))
        index += 1
    capture.release()
    return frames


def agreement(references: list, candidates: list) -> dict:
    """Totals over frames of a one-to-one same-class IoU >= 0.9 matching of two detection lists each."""
    matched = reference = candidate = frames_identical = 0
    score_diffs, ious = [0.0], [1.0]
    for ref, cand in zip(references, candidates, strict=True):
        pairs = match_pairs(ref, cand, IOU_MATCH)
        matched += len(pairs)
        reference += len(ref)
        candidate += len(cand)
        frames_identical += len(pairs) == len(ref) == len(cand)
        score_diffs += [abs(ref[r].score - cand[c].score) for r, c, _ in pairs]
        ious += [iou for _, _, iou in pairs]
    return {
        "frames": len(references), "reference_detections": reference, "candidate_detections": candidate,
        "matched": matched,
        # Both ways: a missing and an extra detection each count against agreement.
        "matched_fraction": matched / max(1, reference, candidate),
        "frames_identical": frames_identical,
        "min_iou": min(ious), "max_score_diff": max(score_diffs),
    }


def timed_ms(run, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Per-call times: CUDA events on a GPU (device time of the queued work), else a synchronised wall clock."""
    for _ in range(warmup):
        run()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            run()
            samples.append((time.perf_counter() - begin) * 1e3)
    return samples


def wall_ms(run, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Host wall clock per call, the device synchronised after each (for calls that end on the host)."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        begin = time.perf_counter()
        run()
        synchronize(device)
        samples.append((time.perf_counter() - begin) * 1e3)
    return samples


def median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def precisions_for(device: torch.device) -> list[str]:
    return ["fp32", "fp16"] if device.type == "cuda" else ["fp32"]


class _TF32Off:
    """fp32 convolutions without TF32 (PyTorch lets cuDNN use TF32 for fp32 convolutions by default)."""

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32 = self.saved


# ------------------------------------------------------------------------------------------------


def bench_detections(device, frames, names, cpu_refs) -> dict:
    out = {}
    detections = {}
    for precision in precisions_for(device):
        detector = SplitDetector(load_model(TINY, device=device, precision=precision), names, "yolov3-tiny-416")
        detector.warm_up()
        detections[precision] = [detector.detect(image) for _, image in frames]
        out[f"{precision}_vs_cpu_fp32"] = agreement(cpu_refs, detections[precision])
        if precision == "fp32" and device.type == "cuda":
            with _TF32Off():
                strict = [detector.detect(image) for _, image in frames]
            out["fp32_no_tf32_vs_cpu_fp32"] = agreement(cpu_refs, strict)
    if "fp16" in detections:
        out["fp16_vs_fp32_same_device"] = agreement(detections["fp32"], detections["fp16"])
    return out


def _paths_row(kind, cut, codec_name, precision, refs, results, frames_out, sizes, timings) -> dict:
    row = {"path": kind, "cut": cut, "codec": codec_name, "precision": precision,
           "payload_bytes_median": median(sizes)}
    row.update(agreement(refs, results))
    row.update({f"{key}_median": median(values) for key, values in timings.items()})
    return row


def bench_split_paths(device, frames, names, cpu_refs) -> dict:
    rows, failures, decode_checks = [], [], []
    for precision in precisions_for(device):
        detector = SplitDetector(load_model(TINY, device=device, precision=precision), names, "yolov3-tiny-416")
        detector.warm_up()
        results = [detector.detect(image) for _, image in frames]
        rows.append(_paths_row("detect", "-", "-", precision, cpu_refs, results, frames, [0], {}))
        for cut_name in TINY_CUTS:
            cut = detector.cut(cut_name)
            for codec_name in codec.CODECS:
                spec = codec.CodecSpec.parse(codec_name)
                if spec.dtype == "jpeg" and not cut.is_image_offload:
                    continue  # JPEG carries the image only: refused by design at other cuts
                try:
                    timings = {"edge_ms": [], "encode_ms": [], "decode_ms": [], "cloud_ms": []}
                    results, sizes = [], []
                    for _, image in frames:
                        sent = detector.edge(image, cut, spec)
                        got = detector.cloud(sent)
                        results.append(got.detections)
                        sizes.append(sent.payload_bytes)
                        for key, value in (("edge_ms", sent.edge_ms), ("encode_ms", sent.encode_ms),
                                           ("decode_ms", got.decode_ms), ("cloud_ms", got.cloud_ms)):
                            timings[key].append(value)
                    rows.append(_paths_row("edge->cloud", cut_name, codec_name, precision, cpu_refs, results,
                                           frames, sizes, timings))
                    if not sent.image_jpeg:
                        decoded = codec.decode_tensors(sent.records, sent.codec,
                                                       detector.runner.expected_shapes(cut),
                                                       device=detector.device, dtype=detector.dtype)
                        decode_checks.append({
                            "cut": cut_name, "codec": codec_name, "precision": precision,
                            "on_device": all(t.device == detector.device and t.dtype == detector.dtype
                                             for t in decoded.values())})
                except Exception as error:  # noqa: BLE001 - a failing path is a result to report
                    failures.append({"path": "edge->cloud", "cut": cut_name, "codec": codec_name,
                                     "precision": precision, "error": repr(error),
                                     "traceback": traceback.format_exc(limit=4)})
        for edge_cut, fog_cut in FOG_ROUTES:
            for codec_name in FOG_CODECS:
                first = codec.CodecSpec.parse(codec_name)
                if first.dtype == "jpeg" and edge_cut != "cloud":
                    continue
                # The fog forwards tensors: JPEG applies to the first hop only.
                second = codec.CodecSpec.parse("fp16+zstd" if first.dtype == "jpeg" else codec_name)
                try:
                    results, sizes, timings = [], [], {"fog_ms": [], "cloud_ms": []}
                    for _, image in frames:
                        sent = detector.edge(image, edge_cut, first)
                        forwarded = detector.fog(sent, int(fog_cut), second)
                        got = detector.cloud(forwarded)
                        results.append(got.detections)
                        sizes.append(forwarded.payload_bytes)
                        timings["fog_ms"].append(forwarded.edge_ms + forwarded.encode_ms)
                        timings["cloud_ms"].append(got.cloud_ms)
                    rows.append(_paths_row("edge->fog->cloud", f"{edge_cut}->{fog_cut}",
                                           f"{first}->{second}", precision, cpu_refs, results, frames, sizes,
                                           timings))
                except Exception as error:  # noqa: BLE001
                    failures.append({"path": "edge->fog->cloud", "cut": f"{edge_cut}->{fog_cut}",
                                     "codec": codec_name, "precision": precision, "error": repr(error),
                                     "traceback": traceback.format_exc(limit=4)})
    return {"rows": rows, "failures": failures, "decode_on_device": decode_checks,
            "all_decoded_on_device": all(c["on_device"] for c in decode_checks)}


# ------------------------------------------------------------------------------------------------


def bench_latency(device, model_name, size, batches, names, frames, repeats, quick) -> dict:
    rows = []
    model_id = f"{model_name}-{size}"
    pretrained = model_name == TINY
    mid_cut = "8" if pretrained else "36"
    cloud_cases = (("cloud", "jpeg-q75"), (mid_cut, "fp16"), (mid_cut, "fp32"), (mid_cut, "int8-channel+zstd"))
    for precision in precisions_for(device):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "random weights": known, latency only
            model = load_model(model_name, size, random_weights=not pretrained, device=device, precision=precision)
        row = {"model": model_name, "input_size": size, "precision": precision,
               "weights": "pretrained COCO" if pretrained else "random (seed 0), latency only"}
        for batch in batches:
            x = torch.rand(batch, 3, size, size, device=model.device, dtype=model.dtype)
            samples = timed_ms(lambda: model(x), model.device, warmup=max(3, repeats // 5),
                               repeats=repeats if batch <= 8 else max(5, repeats // 2))
            row[f"forward_b{batch}_ms"] = median(samples)
            row[f"forward_b{batch}_frames_per_s"] = batch * 1e3 / median(samples)
        threshold = 0.25 if pretrained else RANDOM_WEIGHTS_SCORE_THRESHOLD
        row["cloud_score_threshold"] = threshold
        detector = SplitDetector(model, names, model_id, score_threshold=threshold)
        images = [image for _, image in frames[: 4 if quick else 8]]
        for cut_name, codec_name in cloud_cases:
            spec = codec.CodecSpec.parse(codec_name)
            sent = [detector.edge(image, cut_name, spec) for image in images]
            cloud_ms, decode_ms = [], []
            rounds = 1 if quick else 4
            detector.cloud(sent[0])  # warm-up of this cut's shapes
            for _ in range(rounds):
                for frame in sent:
                    result = detector.cloud(frame)
                    cloud_ms.append(result.cloud_ms)
                    decode_ms.append(result.decode_ms)
            key = f"cloud_{cut_name}_{codec_name}"
            row[f"{key}_ms"] = median(cloud_ms)
            row[f"{key}_decode_ms"] = median(decode_ms)
            row[f"{key}_over_forward_b1"] = median(cloud_ms) / row["forward_b1_ms"]
            if not sent[0].image_jpeg:  # the tail alone, payload already on the device (CUDA events)
                cut = detector.cut(cut_name)
                payload = codec.decode_tensors(sent[0].records, spec, detector.runner.expected_shapes(cut),
                                               device=detector.device, dtype=detector.dtype)
                tail = timed_ms(lambda: detector.runner.tail(payload, cut), detector.device,
                                warmup=3, repeats=max(5, repeats // 2))
                row[f"{key}_tail_only_ms"] = median(tail)
        rows.append(row)
        del model, detector
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"rows": rows}


# ------------------------------------------------------------------------------------------------


class _Exportable(nn.Module):
    """The same layers and weights as a plain module for torch.onnx: convolutions as nn.Conv2d
    (not the CPU oneDNN ops), max-pools as one MaxPool (not the CPU's strided slices), no inference_mode."""

    def __init__(self, model: Darknet):
        super().__init__()
        self.model = model

    def forward(self, x):
        values = {INPUT: x}
        for spec in self.model.spec.layers:
            layer = self.model.layers[spec.index]
            inputs = [values[i] for i in spec.inputs]
            if isinstance(layer, ConvLayer):
                values[spec.index] = apply_activation(layer.conv(inputs[0]), layer.activation)
            elif isinstance(layer, MaxPoolLayer):
                values[spec.index] = layer._pool(layer._padded(inputs[0]))
            else:
                values[spec.index] = layer(*inputs)
        return tuple(values[i] for i in self.model.yolo_indices)


def _export_onnx(model: Darknet, x: torch.Tensor, path: Path) -> str:
    wrapper = _Exportable(model).eval()
    names = [f"yolo_{i}" for i in model.yolo_indices]
    errors = []
    for dynamo in (False, True):
        try:
            with torch.no_grad():
                torch.onnx.export(wrapper, (x,), str(path), input_names=["images"], output_names=names,
                                  opset_version=17, dynamo=dynamo)
            return "dynamo" if dynamo else "torchscript"
        except Exception as error:  # noqa: BLE001 - try the other exporter, report both failures
            errors.append(f"dynamo={dynamo}: {error!r}"[:500])
    raise RuntimeError("; ".join(errors))


def bench_onnxruntime(device, frames, repeats) -> dict:
    try:
        import onnxruntime as ort
    except ImportError as error:
        return {"available": False, "reason": f"onnxruntime not importable: {error}"}
    result = {"available": True, "onnxruntime": ort.__version__, "providers": ort.get_available_providers(),
              "torch_threads": torch.get_num_threads()}
    blob, _ = letterbox(frames[0][1], 416)
    blob_np = blob.numpy()
    with tempfile.TemporaryDirectory(prefix="l2p-onnx-") as tmp:
        path = Path(tmp) / "yolov3-tiny-416.onnx"
        export_model = load_model(TINY)  # fp32 CPU copy: the wrapper bypasses the oneDNN ops
        try:
            result["exporter"] = _export_onnx(export_model, blob, path)
        except Exception as error:  # noqa: BLE001
            result.update(available=False, reason=f"torch.onnx.export failed: {error}")
            return result
        result["onnx_bytes"] = path.stat().st_size
        runs = {"cpu": (torch.device("cpu"), "CPUExecutionProvider")}
        if device.type == "cuda":
            runs["cuda"] = (device, "CUDAExecutionProvider")
        for label, (torch_device, provider) in runs.items():
            entry = {}
            model = load_model(TINY, device=torch_device)
            ours_out = [o.cpu().numpy() for o in model(blob)]

            def run_ours():  # from a host array to host arrays, as ONNX Runtime's run() is
                return [o.cpu() for o in model(torch.from_numpy(blob_np))]

            if provider not in ort.get_available_providers():
                entry["ours_host_to_host_ms"] = median(wall_ms(run_ours, torch_device, warmup=5, repeats=repeats))
                entry["onnxruntime"] = f"{provider} not in this onnxruntime build"
                result[label] = entry
                continue
            session = ort.InferenceSession(str(path), providers=[provider])
            entry["providers_used"] = session.get_providers()
            if entry["providers_used"][0] != provider:
                entry["onnxruntime"] = f"{provider} requested, session fell back to {entry['providers_used']}"
            feed = {"images": blob_np}
            ort_out = session.run(None, feed)
            entry["max_abs_diff_vs_ours"] = max(float(np.abs(a - b).max()) for a, b in zip(ort_out, ours_out))
            # Alternating runs, so that load from elsewhere hits both alike.
            ours, theirs = [], []
            for _ in range(repeats):
                ours += wall_ms(run_ours, torch_device, warmup=1, repeats=1)
                theirs += wall_ms(lambda: session.run(None, feed), torch_device, warmup=1, repeats=1)
            entry["ours_host_to_host_ms"], entry["onnxruntime_ms"] = median(ours), median(theirs)
            entry["ratio_ours_over_onnxruntime"] = entry["ours_host_to_host_ms"] / entry["onnxruntime_ms"]
            result[label] = entry
    return result


# ------------------------------------------------------------------------------------------------


def environment(device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "opencv": cv2.__version__, "device": str(device)}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cudnn=torch.backends.cudnn.version(),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    cudnn_benchmark=torch.backends.cudnn.benchmark,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def print_summary(report: dict) -> None:
    print(f"\n== {report['environment'].get('gpu', report['environment']['device'])}, torch "
          f"{report['environment']['torch']}, {report['elapsed_s']:.0f} s")
    print("\n-- detections (same class, IoU >= 0.9, one-to-one; fraction of max(reference, candidate))")
    for name, row in report["detections"].items():
        print(f"{name:<28} matched {row['matched']:>4}/{row['reference_detections']:<4} "
              f"(cand {row['candidate_detections']:<4}) = {row['matched_fraction']:.4f}  "
              f"frames identical {row['frames_identical']}/{row['frames']}  max score diff {row['max_score_diff']:.4f}")
    paths = report["split_paths"] or {"rows": [], "failures": [], "all_decoded_on_device": None}
    print(f"\n-- split paths on the device: {len(paths['rows'])} ran, {len(paths['failures'])} failed, "
          f"payloads decoded on the device: {paths['all_decoded_on_device']}")
    print(f"{'path':<17}{'cut':<9}{'codec':<24}{'prec':<6}{'match':>7}{'bytes':>10}{'edge ms':>9}{'cloud ms':>9}")
    for row in paths["rows"]:
        edge = row.get("edge_ms_median", row.get("fog_ms_median", float("nan")))
        print(f"{row['path']:<17}{row['cut']:<9}{row['codec']:<24}{row['precision']:<6}"
              f"{row['matched_fraction']:>7.3f}{row['payload_bytes_median']:>10.0f}{edge:>9.2f}"
              f"{row.get('cloud_ms_median', float('nan')):>9.2f}")
    for failure in paths["failures"]:
        print(f"FAILED {failure['path']} {failure['cut']} {failure['codec']} {failure['precision']}: "
              f"{failure['error']}")
    print("\n-- latency (median ms; forward by CUDA events, cloud stage = decode + tail + postprocess, batch 1)")
    for section in list(report["latency"]) + list(report["latency_yolov3"]):
        if "rows" not in section:
            print(f"latency section failed: {section}")
            continue
        for row in section["rows"]:
            forward = "  ".join(f"b{k.split('_')[1][1:]} {v:.2f}" for k, v in row.items()
                                if k.startswith("forward_b") and k.endswith("_ms"))
            print(f"{row['model']:<12}{row['precision']:<6}forward {forward}")
            for key, value in row.items():
                if key.startswith("cloud_") and key.endswith("_ms") and not key.endswith(("decode_ms", "only_ms")):
                    base = key[: -len("_ms")]
                    tail = row.get(f"{base}_tail_only_ms")
                    print(f"{'':<18}{base:<40}{value:>7.2f} ms = {row[base + '_over_forward_b1']:.2f}x forward b1"
                          f"  (decode {row[base + '_decode_ms']:.2f}" + (f", tail alone {tail:.2f})" if tail else ")"))
    onnx = report["onnxruntime"]
    print(f"\n-- onnxruntime: {json.dumps({k: v for k, v in onnx.items() if not isinstance(v, dict)})}")
    for label in ("cpu", "cuda"):
        if isinstance(onnx.get(label), dict):
            print(f"{label}: {json.dumps(onnx[label])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run of the code paths")
    parser.add_argument("--frames", type=int, default=50, help="real frames for the detection comparisons")
    parser.add_argument("--path-frames", type=int, default=6, help="frames per split path and codec")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere (a CPU dry run)")
    parser.add_argument("--only", default=None, help="comma-separated sections to run (default: all)")
    args = parser.parse_args()
    device, _ = resolve_device(args.device)
    if args.quick:
        args.frames, args.path_frames, args.repeats, args.batches = min(args.frames, 6), 2, 3, "1,2"
    batches = [int(b) for b in args.batches.split(",")]
    started = time.perf_counter()
    names = load_class_names()
    frames = real_frames(args.frames)
    report = {"command": " ".join(sys.argv), "environment": environment(device),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "frames": [name for name, _ in frames],
              "iou_match": IOU_MATCH, "section_s": {}}

    args.out.parent.mkdir(parents=True, exist_ok=True)

    def section(name, run):
        begin = time.perf_counter()
        print(f"[{time.perf_counter() - started:6.1f} s] {name} ...", file=sys.stderr, flush=True)
        try:
            report[name] = run()
        except Exception as error:  # noqa: BLE001 - keep the other sections' results
            report[name] = {"error": repr(error), "traceback": traceback.format_exc()}
        report["section_s"][name] = round(time.perf_counter() - begin, 1)
        report["elapsed_s"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(report, indent=1) + "\n")  # after each section: a kill loses one

    wanted = set(args.only.split(",")) if args.only else set(SECTIONS)
    report["sections"] = sorted(wanted)
    for name in SECTIONS:
        report.setdefault(name, [] if name.startswith("latency") else {})
    if wanted & {"detections", "split_paths"}:
        cpu = SplitDetector(load_model(TINY), names, "yolov3-tiny-416")
        cpu_refs = [cpu.detect(image) for _, image in frames]
        report["cpu_reference_detections"] = sum(len(d) for d in cpu_refs)
    if "detections" in wanted:
        section("detections", lambda: bench_detections(device, frames, names, cpu_refs))
    path_frames = frames[: args.path_frames]
    if "split_paths" in wanted:
        section("split_paths", lambda: bench_split_paths(device, path_frames, names, cpu_refs[: args.path_frames]))
    v3_size = 160 if args.quick else 416
    if "latency" in wanted:
        section("latency", lambda: [
            bench_latency(device, TINY, 416, batches, names, frames, args.repeats, args.quick)])
    if "latency_yolov3" in wanted:
        section("latency_yolov3", lambda: [
            bench_latency(device, "yolov3", v3_size, batches, names, frames, args.repeats, args.quick)])
    if "onnxruntime" in wanted:
        section("onnxruntime", lambda: bench_onnxruntime(device, frames, args.repeats))
    try:
        print_summary(report)
    except Exception:  # noqa: BLE001 - the JSON is written; a summary bug must not hide it
        traceback.print_exc()
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
