"""``l2p demo``: the live pipeline on the sample video with pretrained YOLOv3-tiny.

Starts every node as its own process (``l2p run``), prints each frame's split, latency breakdown
and detections, then the summary; writes an annotated frame and a timeline plot of the split and
the latency over time.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import cv2

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.nodes.pipeline_run import print_summary, run_pipeline
from l2p_ros.model.postprocess import Detection
from l2p_ros.sources import read_video
from l2p_ros.visualize import draw_detections


def _frame(video: Path, index: int):
    return next((frame for _, frame in read_video(video, [index])), None)


def plot_timeline(timeline: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = timeline[0]["stamp_s"]
    times = [r["stamp_s"] - t0 for r in timeline]
    fig, (ax_cut, ax_ms) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    ax_cut.step(times, [r["cut"] for r in timeline], where="post")
    ax_cut.set_ylabel("cut after layer\n(-1 image, last = edge)")
    ax_cut.set_title(title)
    bottom = [0.0] * len(timeline)
    for key in ("edge_ms", "encode_ms", "transfer_ms", "decode_ms", "cloud_ms"):
        values = [max(r[key], 0.0) for r in timeline]
        ax_ms.bar(times, values, bottom=bottom, width=0.08, label=key.removesuffix("_ms"))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax_ms.plot(times, [r["total_ms"] for r in timeline], color="black", linewidth=1, label="end to end")
    ax_ms.set_ylabel("ms")
    ax_ms.set_xlabel("capture time (s)")
    ax_ms.legend(loc="upper right", fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(frames: int = 200, out_dir: Path = Path("out/demo"), policy: str | None = None) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "results_bag", ignore_errors=True)  # the demo's own output of a previous run
    summary = run_pipeline(frames=frames, policy=policy, summary_json=out_dir / "summary.json",
                           record=out_dir / "results_bag", log_dir=out_dir / "logs")
    print_summary(summary)
    timeline = summary["timeline"]
    if not timeline:
        print("no frame was detected; see the node logs in", summary["logs"])
        return 1
    plot_timeline(timeline, out_dir / "timeline.png", f"policy {summary['policy']}, {len(timeline)} frames")
    # The camera publishes the video from frame 0 in order, so the k-th frame stamp is video frame k.
    stamps = sorted(summary["frame_stamps"])
    best = max(timeline, key=lambda r: len(r["boxes"]))
    index = min(range(len(stamps)), key=lambda i: abs(stamps[i] - best["stamp_s"])) if stamps else 0
    image = _frame(asset_path(SAMPLE_VIDEO), index)
    if image is not None:
        detections = [Detection(*box) for box in best["boxes"]]
        cv2.imwrite(str(out_dir / "annotated.png"), draw_detections(image, detections))
        print(f"annotated frame {index}: {out_dir / 'annotated.png'}")
    print(f"timeline plot: {out_dir / 'timeline.png'}\nrecorded bag: {out_dir / 'results_bag'}")
    from l2p_ros.testbed.system import unavailable_reason

    reason = unavailable_reason()
    print("this run's link was unshaped (one host, shared memory): "
          + (f"`l2p demo --shaped-link` shows the cut moving on a stepped link (testbed unavailable here: {reason})"
             if reason else "`l2p demo --shaped-link` shows the cut moving on a stepped link"))
    return 0


SHAPED_LINK_TRACE = "step_40_1_40.csv"
SHAPED_LINK_EDGE_CPU_QUOTA = 0.3  # the edge's full pass ~150 ms: offloading wins at 40 Mbit/s, the edge at 1


def run_shaped_link_demo(out_dir: Path = Path("out/demo-shaped"), policy: str | None = None,
                         bottlenecks: Sequence[str] = ()) -> int:
    """The pipeline across the testbed while the uplink steps 40 -> 1 -> 40 Mbit/s (root), the policy
    offered ``bottlenecks`` beside its cuts; where the testbed is unavailable, says why and runs the
    unshaped demo instead."""
    from l2p_ros.nodes.launcher import config_dir
    from l2p_ros.testbed.analysis import phases
    from l2p_ros.testbed.live_run import run_on_trace
    from l2p_ros.testbed.system import unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"the shaped-link demo needs the testbed, unavailable here: {reason}; running unshaped instead")
        return run_demo(out_dir=out_dir, policy=policy)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    results = run_on_trace(config_dir() / SHAPED_LINK_TRACE, policy or "greedy", out_dir,
                           edge_cpu_quota=SHAPED_LINK_EDGE_CPU_QUOTA, duration_s=60.0, prefix="l2pd",
                           bottlenecks=bottlenecks)
    print_summary(results["summary"])
    for phase in phases(results):
        adapt = "" if phase["adapt_s"] is None else f", adapted after {phase['adapt_s']:.2f} s"
        print(f"  {phase['from_s']:5.1f}-{phase['to_s']:5.1f} s at {phase['rate_mbit']:g} Mbit/s: cut "
              f"{phase['settled_cut']}{adapt}; latency mean {phase['latency_mean_ms']} ms; {phase['executed_on']}")
    print(f"plot: {out_dir / 'run.png'}\nresults: {out_dir / 'results.json'}\nrecorded bag: {out_dir / 'bag'}")
    return 0
