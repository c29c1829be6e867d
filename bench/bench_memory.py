"""Memory per node of the live pipeline (proportional set size), against the Jetson target.

    python bench/bench_memory.py --frames 120 --policy greedy --repeats 2 --label before-renovation

Runs the real ``l2p run`` command as a subprocess (the node set as separate processes, on the
bundled sample video, with the model of config/pipeline.yaml: yolov3-tiny) and, while frames flow
(while the camera node is alive), samples every process of its tree: PSS, USS and RSS from
``/proc/PID/smaps_rollup`` (psutil ``memory_full_info``). Nodes are told apart by the node name in
their command line (``__node:=NAME`` if renamed, else the executable or ``-m`` module ending in the
name), not by module path, so a moved module still counts. Reported per node: the peak over the
samples; the edge side (camera, load monitor, network monitor, partitioner, edge: every process of
the tree except the cloud and the ``l2p run`` observer) as the sum of the per-node peaks and as the
largest simultaneous total. Target (issue 12): edge side <= 1 GB PSS in total for yolov3-tiny.

PSS splits each shared page among the processes mapping it, so the six processes' sum is the whole
run's footprint; on a vehicle the cloud and the observer run elsewhere and the edge processes would
carry the libraries' pages alone. As root the bench also reports that figure exactly: the distinct
physical pages mapped by the edge processes (``/proc/PID/pagemap``), "edge distinct". Each node's PSS
is also split by kind of mapping (anonymous, Fast DDS shared-memory segments, torch and OpenCV
libraries, other files) from ``/proc/PID/smaps``.

Beside the run, a "bare import" figure per node: the PSS of a fresh ``python`` that has imported only
that node's module (MODULES below; the first candidate that imports is used), with the heavy
packages it pulled in and the chain of imports that first loaded each (from ``-X importtime``).

The code under test is whatever ``python -c "import l2p_ros"`` finds in the bench's environment, so
``PYTHONPATH=/path/to/other/checkout`` measures another tree; every subprocess runs with a neutral
working directory, so ``python -m`` in the node processes does not pick up the current directory.
DDS stays on this machine: the package's shared-memory-only profile (fastdds_local.xml), and the
variables that would add UDP are removed, as in the Makefile.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil

from l2p_ros.measure.host import cpu_model

RESULTS_DIR = Path(__file__).with_name("results")
MB = 1e6
TARGET_EDGE_PSS_BYTES = 1e9

# Node name -> (side, module candidates for the bare-import figure; the first that imports is used).
# The run itself finds nodes by name in the command line, so only this table knows module paths.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "camera_node": ("edge", ("l2p_ros.nodes.camera_node",)),
    "load_monitor_node": ("edge", ("l2p_ros.nodes.load_monitor_node",)),
    "network_monitor_node": ("edge", ("l2p_ros.nodes.network_monitor_node",)),
    "partitioner_node": ("edge", ("l2p_ros.nodes.partitioner_node",)),
    "edge_node": ("edge", ("l2p_ros.nodes.edge_node",)),
    "edge_container": ("edge", ("l2p_ros.nodes.edge_container",)),  # --single-edge-process: all five in one
    "cloud_node": ("cloud", ("l2p_ros.nodes.cloud_node",)),
    "observer (l2p run)": ("observer", ("l2p_ros.nodes.pipeline_run", "l2p_ros.pipeline_run")),
}
NODE_ORDER = tuple(MODULES)
CLOUD_NODES = ("cloud_node",)
# Reference points for the bare-import table: an empty interpreter and the big libraries alone.
BASELINES = {"python": "", "rclpy": "rclpy", "numpy": "numpy", "cv2": "cv2", "torch": "torch",
             "rclpy participant": "rclpy-participant"}  # rclpy.init() + one Node, with the DDS profile
HEAVY = ("torch", "torchvision", "cv2", "rclpy", "numpy", "scipy", "networkx", "yaml", "zstandard",
         "l2p_ros.model", "l2p_ros.simulation", "l2p_ros.profiling", "l2p_ros.policies")
OBSERVER = "observer (l2p run)"


# ---------------------------------------------------------------- environment of the code under test
def child_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS"):
        env.pop(name, None)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def package_under_test(env: dict, cwd: str) -> Path:
    out = subprocess.run([sys.executable, "-c", "import l2p_ros; print(l2p_ros.__file__)"], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out).parent


def local_profile(package: Path) -> Path:
    found = sorted(package.rglob("fastdds_local.xml"))
    if not found:
        raise SystemExit(f"no fastdds_local.xml under {package}: refusing to run DDS without the local profile")
    return found[0]


def l2p_command() -> list[str]:
    """The ``l2p`` console script next to this interpreter (it runs with this interpreter)."""
    script = Path(sys.executable).with_name("l2p")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from l2p_ros.cli import main; main()"]


def configured_model(package: Path, config: Path | None) -> str:
    path = config or package.parent / "config" / "pipeline.yaml"
    try:
        import yaml

        params = yaml.safe_load(Path(path).read_text())
        return str(params["partitioner_node"]["ros__parameters"].get("model", "yolov3-tiny"))
    except Exception:
        return "unknown"


# ---------------------------------------------------------------- memory of one process
def memory(process: psutil.Process) -> dict | None:
    try:
        info = process.memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return {"pss": info.pss, "uss": info.uss, "rss": info.rss}


def node_name(cmdline: list[str]) -> str | None:
    for arg in cmdline:
        if arg.startswith("__node:="):
            return arg.split(":=", 1)[1]
    for arg in cmdline:
        for name in MODULES:
            if arg == name or re.search(rf"[./]{re.escape(name)}$", arg):
                return name
    return None


def side_of(name: str) -> str:
    if name == OBSERVER:
        return "observer"
    return "cloud" if name in CLOUD_NODES else "edge"


def distinct_pages(pids: list[int]) -> int | None:
    """Bytes of the distinct physical pages the given processes map (root only), else None."""
    import numpy as np

    page = os.sysconf("SC_PAGE_SIZE")
    frames = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for line in maps:
                    start, end = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
                    if line.rstrip().endswith("[vsyscall]"):
                        continue
                    pagemap.seek(start // page * 8)
                    entries = np.frombuffer(pagemap.read((end - start) // page * 8), dtype=np.uint64)
                    present = entries[(entries >> np.uint64(63)) & np.uint64(1) == 1]
                    frames.append(present & np.uint64((1 << 55) - 1))
        except (OSError, ValueError):
            continue
    if not frames:
        return None
    pfns = np.unique(np.concatenate(frames))
    if pfns.size == 0 or (pfns.size == 1 and pfns[0] == 0):
        return None  # no CAP_SYS_ADMIN: the kernel hides frame numbers
    return int(pfns.size) * page


def breakdown(pid: int) -> dict[str, int] | None:
    """PSS bytes of one process by kind of mapping (from /proc/PID/smaps)."""
    kinds: dict[str, int] = {}
    kind = "anonymous"
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            for line in smaps:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    parts = line.split()
                    path = parts[5] if len(parts) > 5 else ""
                    kind = ("dds_shm_segments" if "/dev/shm/fastdds" in path else
                            "anonymous" if path in ("", "[heap]", "[stack]") or path.startswith("[anon") else
                            "torch_libs" if "/torch" in path else
                            "opencv_libs" if "/cv2/" in path or "opencv" in path else
                            "other_files")
                elif line.startswith("Pss:"):
                    kinds[kind] = kinds.get(kind, 0) + int(line.split()[1]) * 1024
    except OSError:
        return None
    return kinds


# ---------------------------------------------------------------- one live run
def sample_tree(root: psutil.Process) -> dict[str, dict]:
    """name -> {pid, pss, uss, rss} for the l2p process and every descendant."""
    found = {}
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        try:
            cmdline = process.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        name = OBSERVER if process.pid == root.pid else node_name(cmdline)
        if name is None:
            name = f"other:{Path(cmdline[0]).name if cmdline else '?'}:{process.pid}"
        usage = memory(process)
        if usage is not None:
            found[name if name not in found else f"{name}:{process.pid}"] = {"pid": process.pid, **usage}
    return found


def live_run(args, env: dict, cwd: str, run_index: int) -> dict:
    command = [*l2p_command(), "run", "--frames", str(args.frames), "--quiet"]
    if args.policy:
        command += ["--policy", args.policy]
    if args.rate_hz is not None:
        command += ["--rate-hz", str(args.rate_hz)]
    if args.config:
        command += ["--config", str(args.config)]
    if args.single_edge_process:
        command += ["--single-edge-process"]
    print(f"[run {run_index}] {' '.join(command)}", flush=True)
    log_lines: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = threading.Thread(target=lambda: log_lines.extend(proc.stdout), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    samples, distinct, kinds = [], [], {}
    try:
        while proc.poll() is None:
            if time.monotonic() - started > args.timeout_s:
                raise SystemExit(f"l2p run still running after {args.timeout_s} s")
            tree = sample_tree(root)
            if "camera_node" in tree or "edge_container" in tree:  # frames flow while the camera is alive
                samples.append({"t_s": round(time.monotonic() - started, 2), "processes": tree})
                if args.distinct and len(samples) % args.distinct_every == 1:
                    edge_pids = [v["pid"] for k, v in tree.items() if side_of(k.split(":")[0]) == "edge"]
                    for name, usage in tree.items():  # per node, the breakdown with the largest total
                        split = breakdown(usage["pid"]) or {}
                        if sum(split.values()) > sum(kinds.get(name, {}).values()):
                            kinds[name] = split
                    size = distinct_pages(edge_pids)
                    if size is not None:
                        distinct.append(size)
            time.sleep(args.interval_s)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        reader.join(5)
    output = "".join(log_lines)
    if proc.returncode != 0:
        raise SystemExit(f"l2p run exited with {proc.returncode}:\n{output[-3000:]}")
    if len(samples) < args.min_samples:
        raise SystemExit(f"only {len(samples)} samples while frames flowed (need {args.min_samples}); "
                         f"use more --frames or a shorter --interval-s")
    peaks: dict[str, dict] = {}
    for sample in samples:
        for name, usage in sample["processes"].items():
            peak = peaks.setdefault(name, {"pss": 0, "uss": 0, "rss": 0})
            for key in ("pss", "uss", "rss"):
                peak[key] = max(peak[key], usage[key])
    simultaneous = [sum(u["pss"] for n, u in s["processes"].items() if side_of(n.split(":")[0]) == "edge")
                    for s in samples]
    summary = {k: v for k, v in _parse_summary(output).items()}
    return {"command": command, "wall_s": round(time.monotonic() - started, 1), "samples": len(samples),
            "peaks": peaks,
            "edge_pss_sum_of_peaks": sum(v["pss"] for n, v in peaks.items() if side_of(n.split(":")[0]) == "edge"),
            "edge_pss_max_simultaneous": max(simultaneous),
            "edge_distinct_bytes_max": max(distinct) if distinct else None,
            "pss_by_mapping_kind": kinds, "pipeline_summary": summary, "sample_series": samples if args.keep_samples else None}


def _parse_summary(output: str) -> dict:
    summary, inside = {}, False
    for line in output.splitlines():
        if line.strip() == "summary":
            inside = True
        elif inside and line.startswith("  "):
            key, _, value = line.strip().partition(" ")
            summary[key] = value.strip()
    return summary


# ---------------------------------------------------------------- bare imports
IMPORT_PROBE = r"""
import importlib, json, sys
errors = []
if sys.argv[1:] == ["rclpy-participant"]:  # one DDS participant with the profile in the environment
    import rclpy
    from rclpy.node import Node
    rclpy.init()
    node = Node("bench_memory_probe")
    for _ in range(10):
        rclpy.spin_once(node, timeout_sec=0.1)
    sys.argv[1:] = ["rclpy"]
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        used = name
        break
    except Exception as error:
        errors.append(f"{name}: {type(error).__name__}: {error}")
else:
    used = None
print(json.dumps({"module": used, "errors": errors, "modules": sorted(sys.modules)}), flush=True)
sys.stdin.read()
"""


def import_chain(importtime: str, target: str) -> list[str]:
    """The chain of imports that first loaded ``target``, outermost first (from -X importtime)."""
    entries = []
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|( *)(\S+)", line)
        if match:
            entries.append((len(match.group(1)), match.group(2)))
    for i, (depth, name) in enumerate(entries):
        if name == target:
            chain, level = [name], depth
            for later_depth, later_name in entries[i + 1:]:  # parents are printed after their children
                if later_depth < level:
                    chain.append(later_name)
                    level = later_depth
            return chain[::-1]
    return []


def bare_import(candidates: tuple[str, ...], env: dict, cwd: str) -> dict:
    with tempfile.TemporaryFile("w+") as err:
        command = [sys.executable, "-X", "importtime", "-c", IMPORT_PROBE, *[c for c in candidates if c]]
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True)
        line = proc.stdout.readline()
        time.sleep(0.5)
        usage = memory(psutil.Process(proc.pid))
        kinds = breakdown(proc.pid)
        proc.stdin.close()
        proc.wait(30)
        err.seek(0)
        importtime = err.read()
    if not line:
        return {"module": None, "error": importtime[-1500:]}
    probe = json.loads(line)
    loaded = set(probe["modules"])
    # import_module's own module has no importtime line: it heads every chain
    heavy = {h: [probe["module"], *import_chain(importtime, h)] for h in HEAVY if h in loaded}
    return {"module": probe["module"], "errors": probe["errors"], **(usage or {}), "pss_by_mapping_kind": kinds,
            "heavy_imports": heavy}


# ---------------------------------------------------------------- report
def mb(value) -> str:
    return "-" if value is None else f"{value / MB:.0f}"


def aggregate(runs: list[dict]) -> dict[str, dict]:
    """Per node, the largest peak over the runs (PSS, USS, RSS)."""
    names = sorted({n for run in runs for n in run["peaks"]},
                   key=lambda n: (NODE_ORDER.index(n) if n in NODE_ORDER else len(NODE_ORDER), n))
    return {n: {k: max(run["peaks"].get(n, {}).get(k, 0) for run in runs) for k in ("pss", "uss", "rss")}
            for n in names}


def print_table(per_node: dict, imports: dict, runs: list[dict], model: str) -> None:
    print(f"\nmemory per node, {model}, peak over {sum(r['samples'] for r in runs)} samples in {len(runs)} run(s) (MB)")
    print(f"{'node':<22}{'side':<10}{'PSS':>7}{'USS':>7}{'RSS':>7}   {'bare import PSS':>15}")
    for name, peak in per_node.items():
        bare = imports.get(name.split(":")[0], {})
        print(f"{name:<22}{side_of(name.split(':')[0]):<10}{mb(peak['pss']):>7}{mb(peak['uss']):>7}"
              f"{mb(peak['rss']):>7}   {mb(bare.get('pss')):>15}")
    edge = max(r["edge_pss_sum_of_peaks"] for r in runs)
    edge_sim = max(r["edge_pss_max_simultaneous"] for r in runs)
    distinct = [r["edge_distinct_bytes_max"] for r in runs if r["edge_distinct_bytes_max"]]
    print(f"edge side PSS: {mb(edge)} MB (sum of per-node peaks), {mb(edge_sim)} MB (largest simultaneous total); "
          f"target <= {mb(TARGET_EDGE_PSS_BYTES)} MB: {'met' if edge <= TARGET_EDGE_PSS_BYTES else 'NOT met'}")
    if distinct:
        print(f"edge distinct pages (edge processes alone, shared libraries counted once): {mb(max(distinct))} MB")
    print(f"cloud PSS: {mb(per_node.get('cloud_node', {}).get('pss'))} MB; "
          f"observer (l2p run) PSS: {mb(per_node.get(OBSERVER, {}).get('pss'))} MB")
    kinds = runs[-1].get("pss_by_mapping_kind") or {}
    if kinds:
        print("PSS by kind of mapping, last run, largest sample (MB): " + "; ".join(
            f"{n}: " + ", ".join(f"{k} {mb(v)}" for k, v in sorted((b or {}).items(), key=lambda kv: -kv[1]) if v >= 5 * MB)
            for n, b in kinds.items()))
    for name, bare in imports.items():
        if bare.get("heavy_imports"):
            chains = "; ".join(" > ".join(chain) for h, chain in bare["heavy_imports"].items()
                               if h in ("torch", "cv2", "l2p_ros.simulation", "l2p_ros.model") and chain)
            print(f"  {name} ({bare['module']}): {chains or '-'}")


def machine() -> dict:
    versions = {}
    for package in ("torch", "numpy", "opencv-python-headless", "ros-kilted-rclpy", "psutil"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu_model(), "cpus": os.cpu_count(), "memory_total_bytes": psutil.virtual_memory().total, "versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--policy", default="greedy")
    parser.add_argument("--rate-hz", type=float, default=None, help="camera rate (default from the YAML)")
    parser.add_argument("--config", type=Path, default=None, help="parameter YAML passed to l2p run")
    parser.add_argument("--single-edge-process", action="store_true",
                        help="l2p run --single-edge-process: the edge-side nodes in one process (edge_container)")
    parser.add_argument("--repeats", type=int, default=1, help="live runs; per node the largest peak is kept")
    parser.add_argument("--interval-s", type=float, default=1.0, help="time between samples")
    parser.add_argument("--min-samples", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--no-distinct", dest="distinct", action="store_false",
                        help="skip the pagemap count of the edge's distinct pages")
    parser.add_argument("--distinct-every", type=int, default=3, help="count distinct pages every Nth sample")
    parser.add_argument("--no-imports", dest="imports", action="store_false", help="skip the bare-import figures")
    parser.add_argument("--keep-samples", action="store_true", help="store every sample in the JSON")
    parser.add_argument("--label", default="", help="suffix of the result file, e.g. before-renovation")
    args = parser.parse_args()

    domain_id = 101 + os.getpid() % 100
    cwd = tempfile.mkdtemp(prefix="l2p-bench-memory-")  # not the checkout: `python -m` puts cwd first
    env = child_env(domain_id)
    package = package_under_test(env, cwd)
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(local_profile(package))
    model = configured_model(package, args.config)
    try:
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        commit = None
    print(f"code under test: {package} (commit {commit}); model {model}; ROS_DOMAIN_ID {domain_id}")

    runs = [live_run(args, env, cwd, i + 1) for i in range(args.repeats)]
    imports = {}
    if args.imports:
        for name, (_, candidates) in MODULES.items():
            imports[name] = bare_import(candidates, env, cwd)
        for name, module in BASELINES.items():
            imports[f"baseline:{name}"] = bare_import((module,) if module else ("sys",), env, cwd)
    per_node = aggregate(runs)
    print_table(per_node, {k: v for k, v in imports.items() if not k.startswith("baseline:")}, runs, model)
    if imports:
        print("baselines (bare import PSS, MB): " + ", ".join(
            f"{k.split(':', 1)[1]} {mb(v.get('pss'))}" for k, v in imports.items() if k.startswith("baseline:")))

    edge_total = max(r["edge_pss_sum_of_peaks"] for r in runs)
    distinct = [r["edge_distinct_bytes_max"] for r in runs if r["edge_distinct_bytes_max"]]
    result = {
        "machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "code_under_test": str(package), "commit": commit, "model": model,
        "bench_command": " ".join([Path(sys.executable).name, *sys.argv]),
        "target": "edge side (camera, load monitor, network monitor, partitioner, edge) <= 1 GB PSS in total",
        "per_node_peak_bytes": {n: {**v, "side": side_of(n.split(":")[0])} for n, v in per_node.items()},
        "edge_pss_bytes": edge_total,
        "edge_pss_max_simultaneous_bytes": max(r["edge_pss_max_simultaneous"] for r in runs),
        "edge_distinct_bytes": max(distinct) if distinct else None,
        "cloud_pss_bytes": sum(v["pss"] for n, v in per_node.items() if side_of(n.split(":")[0]) == "cloud"),
        "observer_pss_bytes": per_node.get(OBSERVER, {}).get("pss"),
        "target_met": edge_total <= TARGET_EDGE_PSS_BYTES,
        "runs": runs, "bare_imports": imports,
        "run_spread_pss_bytes": {n: [r["peaks"].get(n, {}).get("pss") for r in runs] for n in per_node},
        "edge_pss_per_run_median_bytes": statistics.median(r["edge_pss_sum_of_peaks"] for r in runs),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"memory_{model}{'_' + args.label if args.label else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
