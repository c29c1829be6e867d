"""Fast DDS shared-memory files no process uses any more, found and removed.

Why this exists: Fast DDS 3.2 leaves two kinds of files in /dev/shm behind a node that was killed,
and recovers from neither by itself:
- a port segment without its lock file (left when a listener was killed and the others closed
  gracefully after it, measured) wedges its whole DDS domain: every later participant opens it as
  if healthy and none discovers another, until the file is removed by hand (two of twenty domains
  of this host's test history; every multi-process test after the 49% mark of one CI run). Fast DDS
  recovers a dead port, and ``fastdds shm clean`` finds one, only through its lock file.
- each participant's 67 MB data segment, resident in RAM (tmpfs), stays after a kill: a node that
  crashes now and then on a Jetson would eat its memory a segment at a time (this host held 7.9 GB
  of them after a day of tests and crash experiments). ``fastdds shm clean`` removes these, but with every unused port of every
  domain, other users' included, and without telling a port being created from a dead one.
Hence this sweep, run before a run's nodes start.

A file is in use while a process maps it (/proc/PID/maps; a reader or a writer) or holds its lock
file (``_el``: a segment's owner or a port's exclusive reader, ``_sl``: a port's shared readers; an
flock). Files in use by nobody are removed: no process holds a view of them that removing them
could leave stale, so the next participant simply creates them afresh.
"""
from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path
from typing import NamedTuple

SHM_DIR = Path("/dev/shm")
# RTPS well-known ports (the same numbering as UDP): domain d owns PB + DG*d .. PB + DG*(d+1) - 1.
PORT_BASE, DOMAIN_GAIN = 7400, 250
_PORT_FILE = re.compile(r"fastdds_port(\d+)\Z")
_SEGMENT_FILE = re.compile(r"fastdds_[0-9a-f]{16}\Z")
SEGMENT_MIN_AGE_S = 5.0


def domain_ports(domain_id: int) -> range:
    """The RTPS port numbers of DDS domain ``domain_id``."""
    if not 0 <= domain_id <= 232:
        raise ValueError(f"domain_id={domain_id} must be 0..232 (ports above 65535 otherwise)")
    first = PORT_BASE + DOMAIN_GAIN * domain_id
    return range(first, first + DOMAIN_GAIN)


def port_files(port: int, shm_dir: Path = SHM_DIR) -> list[Path]:
    """The files of one Fast DDS port: its segment, its lock files and its named mutex."""
    name = f"fastdds_port{port}"
    return [shm_dir / name, shm_dir / f"{name}_el", shm_dir / f"{name}_sl", shm_dir / f"sem.{name}_mutex"]


def segment_files(segment: str, shm_dir: Path = SHM_DIR) -> list[Path]:
    """The files of one participant's data segment: the segment and its owner's lock file."""
    return [shm_dir / segment, shm_dir / f"{segment}_el"]


def _held(lock_file: Path) -> bool:
    """Whether a live process holds an flock on ``lock_file`` (False when it does not exist)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's own lock
    return False


def _mapped_inodes(shm_dir: Path) -> set[int]:
    """Inodes of files under ``shm_dir`` that some process maps (the processes this user may read).

    Read from /proc/PID/maps directly: psutil's memory_maps parses smaps, per-mapping memory
    statistics of every process, many times the work for a path and an inode."""
    prefix = f"{shm_dir}/"
    inodes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[5].startswith(prefix):
                        inodes.add(int(fields[4]))
        except OSError:  # ended meanwhile, or another user's
            continue
    return inodes


def _unused(entries: list[tuple[object, os.DirEntry, list[Path]]], min_age_s: float, mapped: set[int]) -> list:
    """The keys of ``entries`` (key, the file's entry, its lock files) that no process uses;
    ``mapped``: the inodes some process maps (:func:`_mapped_inodes`)."""
    now = time.time()
    unused = []
    for key, entry, locks in entries:
        try:
            inode, age_s = entry.inode(), now - entry.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile by its owner
            continue
        # ``min_age_s`` spares files created this instant: a file exists a moment before its
        # creator maps and locks it.
        if age_s >= min_age_s and inode not in mapped and not any(_held(lock) for lock in locks):
            unused.append(key)
    return sorted(unused)


def _entries(shm_dir: Path) -> list[os.DirEntry]:
    return list(os.scandir(shm_dir)) if shm_dir.is_dir() else []


def _port_entries(domain_id: int, entries: list[os.DirEntry], shm_dir: Path) -> list:
    """(port, entry, lock files) of each port segment of ``domain_id`` among ``entries``."""
    ports = domain_ports(domain_id)
    found = ((int(match.group(1)), entry) for entry in entries if (match := _PORT_FILE.match(entry.name)))
    return [(port, entry, port_files(port, shm_dir)[1:3]) for port, entry in found if port in ports]


def _segment_entries(entries: list[os.DirEntry], shm_dir: Path) -> list:
    """(name, entry, lock files) of each participant's data segment among ``entries``."""
    return [(entry.name, entry, segment_files(entry.name, shm_dir)[1:])
            for entry in entries if _SEGMENT_FILE.match(entry.name)]


def unused_ports(domain_id: int, min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> list[int]:
    """The ports of ``domain_id`` with a segment in ``shm_dir`` that no process uses, sorted;
    ``min_age_s`` spares those modified more recently (pass a few seconds when processes outside
    this run may be starting in the domain)."""
    entries = _port_entries(domain_id, _entries(shm_dir), shm_dir)
    return _unused(entries, min_age_s, _mapped_inodes(shm_dir)) if entries else []


def unused_segments(min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> list[str]:
    """The participants' data segments in ``shm_dir`` that no process uses (any domain), sorted."""
    entries = _segment_entries(_entries(shm_dir), shm_dir)
    return _unused(entries, min_age_s, _mapped_inodes(shm_dir)) if entries else []


def _remove(paths: list[Path]) -> int:
    """Remove ``paths`` where they exist and are ours to remove; the bytes they held."""
    freed = 0
    for path in paths:
        try:
            size = path.stat().st_size
            path.unlink()
        except (FileNotFoundError, PermissionError):  # gone meanwhile, or another user's
            continue
        freed += size
    return freed


class Sweep(NamedTuple):
    """What ``sweep`` removed: ports of the domain (``orphaned_ports``: those of them that had no
    lock file, the kind that can wedge a domain), data segments, and the bytes they held."""
    ports: list[int]
    orphaned_ports: list[int]
    segments: list[str]
    freed_bytes: int

    def __str__(self) -> str:
        return (f"{len(self.ports)} shared-memory port(s) and {len(self.segments)} data segment(s) "
                f"({self.freed_bytes / 1e6:.0f} MB) that no process uses")


def sweep(domain_id: int, min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> Sweep:
    """Remove the unused ports of ``domain_id`` (``min_age_s`` as in ``unused_ports``) and the
    unused data segments, which belong to every domain: those of the last ``SEGMENT_MIN_AGE_S``
    are spared whatever ``min_age_s``, for a process of another run may be creating one."""
    entries = _entries(shm_dir)
    port_entries, segment_entries = _port_entries(domain_id, entries, shm_dir), _segment_entries(entries, shm_dir)
    mapped = _mapped_inodes(shm_dir) if port_entries or segment_entries else set()
    ports = _unused(port_entries, min_age_s, mapped)
    segments = _unused(segment_entries, max(min_age_s, SEGMENT_MIN_AGE_S), mapped)
    orphaned = [port for port in ports if not any(path.exists() for path in port_files(port, shm_dir)[1:3])]
    freed = sum(_remove(port_files(port, shm_dir)) for port in ports)
    freed += sum(_remove(segment_files(segment, shm_dir)) for segment in segments)
    return Sweep(ports, orphaned, segments, freed)
