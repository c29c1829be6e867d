"""Write an :class:`Evaluation`: results.json, results.md (the learning-to-partition paper's table
layout, then the other statistics) and PNG plots (latency CDF; bandwidth, load, complexity and
the chosen cut over time)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from l2p_ros.simulation.evaluation import REFERENCE_POLICIES, STATIC_POLICIES, Evaluation

SCHEMA = "l2p-evaluation/1"
# Policies drawn in the cut-over-time plot, when evaluated (the best adaptive one is added).
TIMELINE_POLICIES = ("static-optimal", "greedy", "oracle")


def write_report(evaluation: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write every output into ``out_dir``; returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md",
             "latency_cdf": out / "latency_cdf.png", "timeline": out / "timeline.png"}
    results = {"schema": SCHEMA, **evaluation.meta,
               "policies": {name: run.summary for name, run in evaluation.runs.items()}}
    paths["json"].write_text(json.dumps(results, indent=1, default=_json_default, allow_nan=False) + "\n")
    paths["markdown"].write_text(markdown_table(evaluation))
    plot_latency_cdf(evaluation, paths["latency_cdf"])
    plot_timeline(evaluation, paths["timeline"])
    return paths


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_table(evaluation: Evaluation) -> str:
    meta = evaluation.meta
    scenario = meta["scenario"]
    lines = [
        f"# Evaluation: {scenario['name']} (simulated)",
        "",
        f"{scenario['description']}. {scenario['minutes']:g} simulated minutes at {scenario['fps']:g} frames/s, "
        f"seed {scenario['seed']}, deadline {scenario['deadline_ms']:g} ms; tensors {scenario['codec']}, "
        f"images {scenario['image_codec']}. Model {meta['model']}.",
        "",
        f"- edge profile: {_describe(meta['sources']['edge_profile'])}",
        f"- cloud profile: {_describe(meta['sources']['cloud_profile'])}",
        *([_describe_fog(meta['sources']['fog_profile'])] if "fog_profile" in meta["sources"] else []),
        f"- video: {meta['sources']['video_table']['note']}",
        f"- frame costs: {_describe_costs(meta['sources'].get('frame_costs', {}))}",
        *([f"- lower bound: {_fmt(meta['lower_bound']['mean_ms'])} ms mean over every frame ("
           f"{meta['lower_bound']['note']})"] if "lower_bound" in meta else []),
        *([f"- hindsight optimum: {_fmt(meta['hindsight']['mean_ms'])} ms mean over the first "
           f"{_fmt(meta['hindsight']['seconds'])} s ({meta['hindsight']['note']})"] if "hindsight" in meta else []),
        *([f"- the partitioner's view: link_rtt {view['link_rtt']}"
           + (f", link buffer at least {view['link_buffer_ms']:g} ms" if "link_buffer_ms" in view else "")
           + (", arrivals measured" if view.get("link_arrivals") == "measured" else "")
           + (", own queue capped at the decided backlog" if view.get("link_backlog") == "decided" else "")
           + (", edge calibrated" if view["calibrate_edge"] else ", edge uncalibrated")]
          if (view := scenario.get("partitioner_view")) and (view["link_rtt"] != "smoothed" or view["calibrate_edge"])
          else []),
        *([f"- fleet: the cloud is shared by {meta['fleet']['vehicles']} vehicles at {meta['fleet']['frames_per_s']:g} "
           f"frames/s each, batches up to {meta['fleet']['max_batch']} (curves: {meta['fleet']['batching']['source']})"]
          if meta.get("fleet") else []),
        "",
        "| Method | Mean latency (ms) | Std (ms) | Improvement over static optimal |",
        "|---|---:|---:|---:|",
    ]
    for name, run in evaluation.runs.items():
        latency = run.summary["latency_ms"]
        improvement = run.summary.get("improvement_over_static_optimal_pct")
        lines.append(f"| {name} | {_fmt(latency['mean'])} | {_fmt(latency['std'])} | "
                     f"{'-' if improvement is None else f'{improvement:+.1f}%'} |")
    lines += ["", "| Method | p50 | p95 | p99 | edge J/frame | deadline misses | skipped | gap to lower bound | "
              "gap to hindsight optimum | gap to oracle | decisions/s | cuts (frames) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, run in evaluation.runs.items():
        s = run.summary
        latency = s["latency_ms"]
        gap = s.get("gap_to_oracle_pct")
        bound_gap = s.get("gap_to_lower_bound_pct")
        hindsight_gap = s.get("hindsight_gap_pct")
        cuts = ", ".join(f"{short_label(cut)}: {count}" for cut, count in s["cut_histogram"].items())
        lines.append(f"| {name} | {_fmt(latency['p50'])} | {_fmt(latency['p95'])} | {_fmt(latency['p99'])} | "
                     f"{_fmt(s['edge_energy_j_per_frame'], 3)} | {s['deadline_misses']} | {s['skipped_frames']} | "
                     f"{'-' if bound_gap is None else f'{bound_gap:+.1f}%'} | "
                     f"{'-' if hindsight_gap is None else f'{hindsight_gap:+.1f}%'} | "
                     f"{'-' if gap is None else f'{gap:+.1f}%'} | {_fmt(s['decisions_per_s'], 0)} | {cuts} |")
    best = meta.get("best_adaptive")
    if best:
        twins = best["same_decisions_as"]
        lines += ["", f"Best adaptive policy: **{best['policy']}**, {_fmt(best['mean_ms'])} ms mean, "
                      f"{_fmt(best['improvement_over_static_optimal_pct'])}% below static optimal, "
                      f"{_fmt(best['gap_to_oracle_pct'])}% above the oracle; lowest std of all baselines: "
                      f"{'yes' if best['lowest_std_of_all_baselines'] else 'no'}"
                      f"{' (same decisions as ' + ', '.join(twins) + ')' if twins else ''}. "
                      f"(Targets: {best['targets']}.)"]
    notes = [f"- {name}: {run.summary['note']}" for name, run in evaluation.runs.items() if run.summary.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def _describe(source: dict) -> str:
    if source.get("derived"):
        factor = source.get("speed_factor")
        origin = f"{factor:g}x the {source.get('from', 'edge profile')}" if factor else source.get("file", "")
        return f"DERIVED ({origin})"
    return f"measured ({source.get('file', '')})"


def _describe_costs(source: dict) -> str:
    if not source.get("charged"):
        return "not charged (encoding, decoding, frame complexity and the decision left out)"
    uncharged = source.get("uncharged_codecs")
    return (f"measured, charged ({source['file']}; per frame {source['per_frame_ms']} ms)"
            + (f"; not charged for {', '.join(uncharged)}" if uncharged else ""))


def _describe_fog(source: dict) -> str:
    link = source["fog_cloud_link"]
    return (f"- fog profile: {_describe(source)}; fog -> cloud link {link['bandwidth_mbps']:g} Mbit/s, "
            f"RTT {link['rtt_ms']:g} ms ({link['note']}); fog codec {source['codec']}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_latency_cdf(evaluation: Evaluation, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, run in evaluation.runs.items():
        latency = run.log.latency_ms[run.log.processed]
        latency = np.sort(latency[np.isfinite(latency)])
        if len(latency):
            style = "--" if name in STATIC_POLICIES else (":" if name in REFERENCE_POLICIES else "-")
            ax.plot(latency, np.arange(1, len(latency) + 1) / len(latency), style, label=name)
    ax.axvline(evaluation.meta["scenario"]["deadline_ms"], color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale; grey: deadline)")
    ax.set_ylabel("fraction of processed frames")
    ax.set_title(f"{evaluation.meta['scenario']['name']}: latency CDF (simulated)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_timeline(evaluation: Evaluation, path: Path) -> None:
    """Bandwidth (true and estimated), edge load and complexity, and the chosen cut over time."""
    plt = _pyplot()
    runs = evaluation.runs
    best = evaluation.meta.get("best_adaptive", {}).get("policy")
    shown = [name for name in runs if name in TIMELINE_POLICIES or name == best]
    reference = next(iter(runs.values())).log
    fig, axes = plt.subplots(2 + len(shown), 1, figsize=(11, 4 + 1.3 * len(shown)), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1.3] + [1] * len(shown)})
    t = reference.time_s
    axes[0].plot(t, reference.bandwidth_mbps, label="true", linewidth=0.8)
    axes[0].plot(t, reference.bandwidth_estimate_mbps, label="estimate", linewidth=0.8)
    axes[0].set_ylabel("uplink Mbit/s")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].plot(t, reference.edge_load, label="edge load", linewidth=0.8)
    axes[1].plot(t, reference.complexity, label="frame complexity", linewidth=0.8)
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=8, loc="upper right")
    # One cut axis for every policy: cuts ordered from image offload to edge only.
    labels = sorted({label for name in shown for label in runs[name].log.partition_labels()}, key=_cut_order)
    for ax, name in zip(axes[2:], shown):
        log = runs[name].log
        own = log.partition_labels()
        position = np.array([labels.index(own[p]) if p >= 0 else np.nan for p in log.partition])
        ax.plot(t, position, ".", markersize=1.5)
        ax.set_yticks(range(len(labels)), [short_label(label) for label in labels], fontsize=7)
        ax.set_ylabel(name, fontsize=8)
    axes[-1].set_xlabel("simulated time (s)")
    fig.suptitle(f"{evaluation.meta['scenario']['name']}: conditions and chosen cut (simulated)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def short_label(label: str, max_layers: int = 6) -> str:
    """A DAG cut's label lists its edge layers; past ``max_layers`` say how many and the last one."""
    if label.startswith("dag:") and label.count(",") >= max_layers:
        layers = label[4:].split(",")
        return f"dag:{len(layers)} layers..{layers[-1]}"
    return label


def _cut_order(label: str) -> tuple:
    if label == "cloud":
        return (0, 0)
    if label == "edge":
        return (3, 0)
    if label.isdigit():
        return (1, int(label))
    return (2, label)
