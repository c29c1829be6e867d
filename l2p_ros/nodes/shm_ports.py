"""Fast DDS shared-memory ports no process uses any more, found and removed per DDS domain.

Why this exists: a port segment in /dev/shm without its lock file wedges its whole domain with
Fast DDS 3.2: every later participant opens it as if healthy and none of them discovers another,
until the file is removed by hand (measured: two of twenty domains of this host's test history, and
every multi-process test after the 49% mark of one CI run). Fast DDS recovers a dead port only
through its lock file, and ``fastdds shm clean`` looks at ports through their lock files too, so
neither sees this one; hence this small sweep, run before a run's nodes start in its domain.

A port is in use while a process maps its segment (a reader or a writer; /proc/PID/maps) or holds
one of its lock files (``_el``: opened for exclusive reading, ``_sl``: shared reading; an flock).
One in use by nobody is removed with all its files: no process holds a view of it that removing it
could leave stale, so the next participant simply creates it afresh.
"""
from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

SHM_DIR = Path("/dev/shm")
# RTPS well-known ports (the same numbering as UDP): domain d owns PB + DG*d .. PB + DG*(d+1) - 1.
PORT_BASE, DOMAIN_GAIN = 7400, 250
_PORT_FILE = re.compile(r"fastdds_port(\d+)\Z")


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


def unused_ports(domain_id: int, min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> list[int]:
    """The ports of ``domain_id`` with a segment in ``shm_dir`` that no process uses, sorted.

    ``min_age_s`` spares segments modified more recently than that: a port another process is
    creating this instant exists a moment before it is mapped and locked (pass a few seconds when
    processes outside this run may be starting in the domain)."""
    ports = domain_ports(domain_id)
    segments = [(int(match.group(1)), entry) for entry in (os.scandir(shm_dir) if shm_dir.is_dir() else ())
                if (match := _PORT_FILE.match(entry.name)) and int(match.group(1)) in ports]
    if not segments:
        return []
    mapped, now = _mapped_inodes(shm_dir), time.time()
    unused = []
    for port, entry in segments:
        _, exclusive, shared, _ = port_files(port, shm_dir)
        try:
            inode, age_s = entry.inode(), now - entry.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile by its owner
            continue
        if age_s >= min_age_s and inode not in mapped and not _held(exclusive) and not _held(shared):
            unused.append(port)
    return sorted(unused)


def remove_unused_ports(domain_id: int, min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> list[int]:
    """Remove the files of every port of ``domain_id`` no process uses (``unused_ports``); those ports."""
    removed = unused_ports(domain_id, min_age_s, shm_dir)
    for port in removed:
        for path in port_files(port, shm_dir):
            path.unlink(missing_ok=True)
    return removed
