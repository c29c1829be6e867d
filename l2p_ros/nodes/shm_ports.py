"""Fast DDS shared-memory ports left behind by dead processes, found and removed per DDS domain.

Why this exists: a port segment in /dev/shm whose lock files are gone while the segment stays (left
by a participant that died mid-shutdown) wedges its whole domain with Fast DDS 3.2: every later
participant opens the dead port as if healthy and none of them discovers another, until the file
is removed by hand (measured: two of twenty domains of this host's test history, and every
multi-process test after the 49% mark of one CI run). Fast DDS recovers a dead port only while its
lock file is still there, and ``fastdds shm clean`` looks at ports through their lock files too, so
neither sees this one; hence this small sweep, run before a run's nodes start in its own domain.

A port is alive while some process holds one of its lock files (``_el``: opened for exclusive
reading, ``_sl``: shared reading, an flock either way); one no process holds is dead, and removing
its files is what Fast DDS's own zombie handling does when it reopens the port.
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


def port_files(port: int, shm_dir: Path = SHM_DIR) -> list[Path]:
    """The files of one Fast DDS port: its segment, its lock files and its named mutex."""
    name = f"fastdds_port{port}"
    return [shm_dir / name, shm_dir / f"{name}_el", shm_dir / f"{name}_sl", shm_dir / f"sem.{name}_mutex"]


def dead_ports(domain_id: int, min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> list[int]:
    """The ports of ``domain_id`` with a segment in ``shm_dir`` and no lock held on them, sorted.

    ``min_age_s`` spares segments modified more recently than that: a port another process is
    creating this instant has its segment before its lock file (pass a few seconds when processes
    outside this run may be starting in the domain)."""
    ports = domain_ports(domain_id)
    now = time.time()
    dead = []
    for entry in os.scandir(shm_dir) if shm_dir.is_dir() else ():
        match = _PORT_FILE.match(entry.name)
        if not match or int(match.group(1)) not in ports:
            continue
        port = int(match.group(1))
        segment, exclusive, shared, _ = port_files(port, shm_dir)
        try:
            age_s = now - entry.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile by its owner
            continue
        if age_s >= min_age_s and not _held(exclusive) and not _held(shared):
            dead.append(port)
    return sorted(dead)


def remove_dead_ports(domain_id: int, min_age_s: float = 0.0, shm_dir: Path = SHM_DIR) -> list[int]:
    """Remove the files of every dead port of ``domain_id`` (see ``dead_ports``); the ports removed."""
    removed = dead_ports(domain_id, min_age_s, shm_dir)
    for port in removed:
        for path in port_files(port, shm_dir):
            path.unlink(missing_ok=True)
    return removed
