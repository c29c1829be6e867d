"""Link and edge conditions over time: bandwidth traces, their CSV format, and seeded generators.

A :class:`Trace` is sampled at increasing times and holds each sample until the next one (sample
and hold); after its last sample the last values hold forever. The CSV format is

    time_s,bandwidth_mbps[,rtt_ms][,edge_load]

one header line, then one row per sample; lines starting with ``#`` are comments (a generated
trace says there that it is simulated). Columns left out take the defaults given to
:func:`load_trace`.

Generators take a time grid (seconds, ascending) and a seeded ``numpy.random.Generator`` and
return one value per grid point, so the same seed always gives the same trace.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REQUIRED_COLUMNS = ("time_s", "bandwidth_mbps")
OPTIONAL_COLUMNS = ("rtt_ms", "edge_load")
DEFAULT_RTT_MS = 20.0
DEFAULT_EDGE_LOAD = 0.0


class TraceError(ValueError):
    """A trace file or array that cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class Trace:
    """Conditions sampled at ``time_s`` (N,), seconds, strictly increasing from >= 0.

    ``bandwidth_mbps`` (N,): uplink, Mbit/s, >= 0 (0: the link is down); ``rtt_ms`` (N,): >= 0;
    ``edge_load`` (N,): fraction 0..1 of the edge taken by other work. ``note`` says where the
    trace came from (a generator's parameters, or a file).
    """

    time_s: np.ndarray
    bandwidth_mbps: np.ndarray
    rtt_ms: np.ndarray
    edge_load: np.ndarray
    note: str = ""

    def __post_init__(self) -> None:
        arrays = {name: np.asarray(getattr(self, name), dtype=float)
                  for name in ("time_s", "bandwidth_mbps", "rtt_ms", "edge_load")}
        n = len(arrays["time_s"])
        if n == 0:
            raise TraceError("a trace needs at least one sample")
        for name, array in arrays.items():
            if array.shape != (n,):
                raise TraceError(f"{name} has shape {array.shape}, expected ({n},) like time_s")
            if not np.isfinite(array).all():
                raise TraceError(f"{name} holds non-finite values")
            array.flags.writeable = False  # a trace is shared by every policy's run
            object.__setattr__(self, name, array)
        time_s = arrays["time_s"]
        if time_s[0] < 0 or (np.diff(time_s) <= 0).any():
            raise TraceError("time_s must start at >= 0 and be strictly increasing")
        if (arrays["bandwidth_mbps"] < 0).any() or (arrays["rtt_ms"] < 0).any():
            raise TraceError("bandwidth_mbps and rtt_ms must be >= 0")
        if ((arrays["edge_load"] < 0) | (arrays["edge_load"] > 1)).any():
            raise TraceError("edge_load must be in 0..1")

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def duration_s(self) -> float:
        """Time of the last sample (the trace holds its values after it)."""
        return float(self.time_s[-1])

    def index_at(self, t_s: float) -> int:
        """Index of the sample in force at ``t_s`` (the first one before the trace starts)."""
        return max(int(np.searchsorted(self.time_s, t_s, side="right")) - 1, 0)

    def at(self, t_s: float) -> tuple[float, float, float]:
        """``(bandwidth_mbps, rtt_ms, edge_load)`` in force at ``t_s``."""
        i = self.index_at(t_s)
        return float(self.bandwidth_mbps[i]), float(self.rtt_ms[i]), float(self.edge_load[i])

    def time_to_complete(self, rates: np.ndarray, start_s: float, work: float) -> float:
        """Earliest ``t >= start_s`` by which ``rates`` (per-sample rate, held) integrates to ``work``.

        ``rates`` (N,) is a rate per second in force at each sample (bytes/s of the link, or the
        edge's share of itself); a zero rate stalls the work until the rate comes back. Returns
        ``inf`` when the work can never finish (the rate stays 0 after the last sample).
        """
        if work <= 0:
            return start_s
        i = self.index_at(start_s)
        t = start_s
        while True:
            end = self.time_s[i + 1] if i + 1 < len(self.time_s) else math.inf
            rate = float(rates[i])
            if rate > 0 and (end == math.inf or rate * (end - t) >= work):
                return t + work / rate
            if end == math.inf:
                return math.inf
            work -= rate * (end - t)
            t, i = end, i + 1

    def save(self, path: str | Path) -> None:
        """Write the trace as CSV (every column, the note as a comment line)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            if self.note:
                handle.write("".join(f"# {line}\n" for line in self.note.splitlines()))
            writer = csv.writer(handle)
            writer.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
            for row in zip(self.time_s, self.bandwidth_mbps, self.rtt_ms, self.edge_load):
                writer.writerow([repr(float(v)) for v in row])  # repr: exact round trip


def load_trace(path: str | Path, default_rtt_ms: float = DEFAULT_RTT_MS,
               default_edge_load: float = DEFAULT_EDGE_LOAD) -> Trace:
    """Read a CSV trace; :class:`TraceError` names the file, line and column of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"trace not found: {path}")
    columns: dict[str, list[float]] = {}
    header: list[str] | None = None
    notes = []
    with path.open(newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if line.lstrip().startswith("#"):
                notes.append(line.strip()[1:].strip())
                continue
            row = next(csv.reader([line]))
            if header is None:
                header = _check_header(path, line_number, row)
                columns = {name: [] for name in header}
                continue
            if len(row) != len(header):
                raise TraceError(f"{path}:{line_number}: {len(row)} fields, the header has {len(header)} "
                                 f"({','.join(header)})")
            for name, text in zip(header, row):
                columns[name].append(_parse_value(path, line_number, name, text))
            _check_row(path, line_number, {name: values[-1] for name, values in columns.items()},
                       columns["time_s"])
    if header is None or not columns["time_s"]:
        raise TraceError(f"{path}: no samples (expected a header {','.join(REQUIRED_COLUMNS)}[,...] and rows)")
    n = len(columns["time_s"])
    return Trace(np.array(columns["time_s"]), np.array(columns["bandwidth_mbps"]),
                 np.array(columns.get("rtt_ms", [default_rtt_ms] * n)),
                 np.array(columns.get("edge_load", [default_edge_load] * n)),
                 note="\n".join(notes) or f"from {path}")


def _check_header(path: Path, line_number: int, row: list[str]) -> list[str]:
    header = [name.strip() for name in row]
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    for position, name in enumerate(header, start=1):
        if name not in known:
            raise TraceError(f"{path}:{line_number}: column {position} {name!r} is unknown; "
                             f"allowed: {', '.join(known)}")
        if header.count(name) > 1:
            raise TraceError(f"{path}:{line_number}: column {name!r} appears twice")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise TraceError(f"{path}:{line_number}: header lacks column(s) {', '.join(missing)}")
    return header


def _parse_value(path: Path, line_number: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}:{line_number}: column {column!r}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(f"{path}:{line_number}: column {column!r}: {text.strip()!r} is not finite")
    return value


def _check_row(path: Path, line_number: int, row: dict[str, float], times: list[float]) -> None:
    where = f"{path}:{line_number}"
    if row["time_s"] < 0 or (len(times) > 1 and row["time_s"] <= times[-2]):
        raise TraceError(f"{where}: column 'time_s': {row['time_s']} must be >= 0 and greater than the previous row's")
    for column in ("bandwidth_mbps", "rtt_ms"):
        if row.get(column, 0.0) < 0:
            raise TraceError(f"{where}: column {column!r}: {row[column]} must be >= 0")
    if not 0.0 <= row.get("edge_load", 0.0) <= 1.0:
        raise TraceError(f"{where}: column 'edge_load': {row['edge_load']} must be in 0..1")


# --- generators ----------------------------------------------------------------------------------

def time_grid(duration_s: float, step_s: float) -> np.ndarray:
    """Sample times 0, step, 2 step, ... covering ``duration_s`` (its end included)."""
    if duration_s <= 0 or step_s <= 0:
        raise ValueError(f"duration_s and step_s must be > 0, got {duration_s}, {step_s}")
    return np.arange(0.0, duration_s + step_s, step_s)


def _ar1(times_s: np.ndarray, rng: np.random.Generator, mean: float, std: float, correlation_s: float) -> np.ndarray:
    """A stationary Gaussian AR(1) (Ornstein-Uhlenbeck sampled on the grid)."""
    steps = np.diff(times_s, prepend=times_s[0])
    phi = np.exp(-steps / correlation_s)
    noise = rng.standard_normal(len(times_s))
    values = np.empty(len(times_s))
    values[0] = mean + std * noise[0]
    for i in range(1, len(times_s)):
        values[i] = mean + phi[i] * (values[i - 1] - mean) + std * np.sqrt(1 - phi[i] ** 2) * noise[i]
    return values


def fluctuating_mbps(times_s: np.ndarray, rng: np.random.Generator, low_mbps: float = 5.0,
                     high_mbps: float = 50.0, correlation_s: float = 15.0) -> np.ndarray:
    """Bandwidth wandering between ``low_mbps`` and ``high_mbps``: an AR(1) in log bandwidth.

    Its mean is the geometric middle of the range and its spread a quarter of the log range, so
    about 95% of the time it is inside the range without touching it; it is clipped to the range.
    ``correlation_s``: how long the link takes to forget its level (the AR(1) time constant).
    """
    if not 0 < low_mbps < high_mbps:
        raise ValueError(f"need 0 < low_mbps < high_mbps, got {low_mbps}, {high_mbps}")
    low, high = np.log(low_mbps), np.log(high_mbps)
    log_bw = _ar1(times_s, rng, (low + high) / 2, (high - low) / 4, correlation_s)
    return np.clip(np.exp(log_bw), low_mbps, high_mbps)  # clipped after exp: exp(log(5)) is not 5


def step_changes_mbps(times_s: np.ndarray, rng: np.random.Generator, low_mbps: float = 5.0,
                      high_mbps: float = 50.0, mean_hold_s: float = 30.0) -> np.ndarray:
    """Piecewise-constant bandwidth: a level drawn log-uniformly in the range, held for an
    exponentially distributed time of mean ``mean_hold_s``, then a new level."""
    if not 0 < low_mbps < high_mbps:
        raise ValueError(f"need 0 < low_mbps < high_mbps, got {low_mbps}, {high_mbps}")
    values = np.empty(len(times_s))
    next_change_s = -1.0
    level = low_mbps
    for i, t in enumerate(times_s):
        if t >= next_change_s:
            level = float(np.clip(np.exp(rng.uniform(np.log(low_mbps), np.log(high_mbps))), low_mbps, high_mbps))
            next_change_s = t + rng.exponential(mean_hold_s)
        values[i] = level
    return values


def markov_on_off_mbps(times_s: np.ndarray, rng: np.random.Generator, on_mbps: float = 20.0,
                       off_mbps: float = 0.0, mean_on_s: float = 60.0, mean_off_s: float = 5.0) -> np.ndarray:
    """A two-state Markov link: up at ``on_mbps`` for exponential periods of mean ``mean_on_s``,
    down at ``off_mbps`` (0: no link) for periods of mean ``mean_off_s``. Starts up."""
    values = np.empty(len(times_s))
    up, next_switch_s = True, rng.exponential(mean_on_s)
    for i, t in enumerate(times_s):
        while t >= next_switch_s:
            up = not up
            next_switch_s += rng.exponential(mean_on_s if up else mean_off_s)
        values[i] = on_mbps if up else off_mbps
    return values


def throttled_mbps(times_s: np.ndarray, normal_mbps: float, throttled_mbps: float,
                   start_s: float, end_s: float) -> np.ndarray:
    """``normal_mbps``, except ``throttled_mbps`` for ``start_s <= t < end_s`` (a throttled link)."""
    return np.where((times_s >= start_s) & (times_s < end_s), throttled_mbps, normal_mbps).astype(float)


def jittered_rtt_ms(times_s: np.ndarray, rng: np.random.Generator, base_ms: float = 20.0,
                    jitter_ms: float = 3.0, correlation_s: float = 5.0, min_ms: float = 1.0) -> np.ndarray:
    """RTT around ``base_ms`` with AR(1) jitter of std ``jitter_ms``, never below ``min_ms``."""
    return np.maximum(_ar1(times_s, rng, base_ms, jitter_ms, correlation_s), min_ms)


def load_bursts(times_s: np.ndarray, rng: np.random.Generator, base_load: float = 0.1,
                base_jitter: float = 0.03, burst_load: tuple[float, float] = (0.5, 0.85),
                burst_s: tuple[float, float] = (5.0, 20.0), mean_gap_s: float = 45.0) -> np.ndarray:
    """Edge load (0..1): a background level with jitter, and bursts of other work.

    Bursts start as a Poisson process (mean gap ``mean_gap_s`` between a burst's end and the next
    start), last uniformly ``burst_s`` seconds and hold a load drawn uniformly in ``burst_load``.
    """
    load = base_load + base_jitter * rng.standard_normal(len(times_s))
    t = rng.exponential(mean_gap_s)
    end_s = times_s[-1] if len(times_s) else 0.0
    while t <= end_s:
        length = rng.uniform(*burst_s)
        level = rng.uniform(*burst_load)
        inside = (times_s >= t) & (times_s < t + length)
        load[inside] = np.maximum(load[inside], level)
        t += length + rng.exponential(mean_gap_s)
    return np.clip(load, 0.0, 1.0)
