"""The figures of a testbed run: link (shaped and estimated), the cut, and per-frame latency with its
breakdown, live beside the simulator's prediction when there is one."""
from __future__ import annotations

from pathlib import Path


def plot_run(results: dict, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = [row for row in results["timeline"] if row["trace_time_s"] >= 0]
    simulated = (results.get("simulated") or {}).get("timeline", [])
    t = [row["trace_time_s"] for row in timeline]
    fig, (link_ax, cut_ax, latency_ax) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    applied = results["trace"]["applied"]
    steps_t = [entry["trace_time_s"] for entry in applied] + [results["trace"]["duration_s"]]
    steps_r = [entry["bandwidth_mbps"] for entry in applied]
    uplink = results["trace"].get("link", "uplink")
    link_ax.step(steps_t, steps_r + steps_r[-1:], where="post", color="black", label=f"{uplink} shaped (tc tbf)")
    link_ax.plot(t, [row["estimated_mbps"] for row in timeline], ".", ms=3, label=f"{uplink} estimated, live (decisions)")
    backhaul = results.get("backhaul")
    if backhaul:
        b_t = [entry["trace_time_s"] for entry in backhaul["applied"]] + [results["trace"]["duration_s"]]
        b_r = [entry["bandwidth_mbps"] for entry in backhaul["applied"]]
        link_ax.step(b_t, b_r + b_r[-1:], where="post", color="tab:brown", label=f"{backhaul['link']} shaped")
    fog_estimates = [(row["trace_time_s"], row["fog_cloud_estimated_mbps"]) for row in results.get("decisions") or []
                     if row.get("fog_cloud_estimated_mbps") is not None and row["trace_time_s"] >= 0]
    if backhaul or fog_estimates:
        link_ax.plot([at for at, _ in fog_estimates], [rate for _, rate in fog_estimates], ".", ms=2,
                     color="tab:brown", alpha=0.6, label="fog -> cloud estimated, live (decisions)")
    if simulated:
        link_ax.plot([r["trace_time_s"] for r in simulated], [r["estimated_mbps"] for r in simulated], "-",
                     lw=0.8, alpha=0.7, label="estimated, simulator")
    link_ax.set_yscale("log")
    link_ax.set_ylabel("uplink Mbit/s")
    link_ax.legend(fontsize=8)

    def cut_of(row) -> int:
        return row["decided_cut"] if row.get("decided_cut") is not None else row["cut"]

    colors = {"cloud": "tab:blue", "edge": "tab:green", "edge (fallback)": "tab:red", "fog": "tab:olive",
              "edge+cloud": "tab:cyan", "edge+fog": "tab:brown", "edge+fog+cloud": "tab:pink", "fog+cloud": "tab:gray"}
    for executed_on in sorted({row["executed_on"] for row in timeline}, key=lambda name: (name not in colors, name)):
        rows = [row for row in timeline if row["executed_on"] == executed_on]
        cut_ax.plot([row["trace_time_s"] for row in rows], [cut_of(row) for row in rows], "o", ms=3,
                    color=colors.get(executed_on), label=f"live, decided; finished on {executed_on}")
    fog_cuts = [(row["trace_time_s"], row["fog_until_layer"]) for row in results.get("decisions") or []
                if row.get("fog_until_layer", -1) >= 0 and row["trace_time_s"] >= 0]
    if fog_cuts:  # three tiers: the second cut (the fog's last layer) of each decision
        cut_ax.plot([at for at, _ in fog_cuts], [j for _, j in fog_cuts], "x", ms=3, color="tab:purple",
                    label="live, decided: fog's last layer")
    if simulated:
        cut_ax.step([r["trace_time_s"] for r in simulated], [r["cut"] for r in simulated], where="post", lw=0.8,
                    color="gray", alpha=0.8, label="simulator")
    cut_ax.set_ylabel("cut (-1 = image, last = edge only)")
    cut_ax.legend(fontsize=8, loc="upper left")
    loads = [(row["trace_time_s"], row["edge_cpu_percent"]) for row in results.get("decisions") or []
             if row.get("edge_cpu_percent") is not None and row["trace_time_s"] >= 0]
    if loads:  # the load the policy decided on, beside the cut it chose
        load_ax = cut_ax.twinx()
        load_ax.plot([at for at, _ in loads], [load for _, load in loads], "-", lw=0.7, color="tab:orange", alpha=0.7)
        load_ax.set_ylabel("edge CPU % (decided on)", color="tab:orange")

    parts = ("edge_ms", "encode_ms", "transfer_ms", "decode_ms", "cloud_ms")
    bottom = [0.0] * len(timeline)
    for part in parts:
        values = [row[part] for row in timeline]
        latency_ax.bar(t, values, bottom=bottom, width=0.08, label=part.replace("_ms", ""))
        bottom = [b + v for b, v in zip(bottom, values)]
    latency_ax.plot(t, [row["total_ms"] for row in timeline], "k.", ms=2, label="total, live")
    if simulated:
        latency_ax.plot([r["trace_time_s"] for r in simulated], [r["latency_ms"] for r in simulated], "-", lw=0.8,
                        color="gray", label="total, simulator")
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel("latency ms")
    latency_ax.set_xlabel("seconds since the trace started")
    latency_ax.legend(fontsize=7, ncol=4)
    for event in results.get("events") or []:
        for ax in (link_ax, cut_ax, latency_ax):
            ax.axvline(event["trace_time_s"], color="purple", ls="--", lw=0.8)
        link_ax.annotate(event["event"], (event["trace_time_s"], 1), xycoords=("data", "axes fraction"),
                         rotation=90, va="top", ha="right", fontsize=7, color="purple")
    summary = results["summary"]
    fig.suptitle(title or f"{summary.get('policy')}: {summary['frames_detected']} detected, "
                 f"{summary['frames_dropped']} dropped {summary['drops'] or ''}, {summary['unaccounted']} unaccounted")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
