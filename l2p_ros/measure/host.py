"""Which CPU a measurement ran on, for the machine block every profile and bench result carries.

``platform.processor()`` says only "x86_64" on Linux, and the hosts this project measures on
change between sessions (an Intel CPU with AMX one day, an AMD EPYC the next, ~1.7x apart on the
same layers): figures are only comparable where this says the same."""
from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """"AMD EPYC (family 26, model 2)" from the first processor in ``cpuinfo``; an ARM board
    (a Jetson) by the file's ``Model`` line, which its kernels write after the processors; where
    the file is missing or says neither, what ``platform`` knows."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    first: dict[str, str] = {}
    board = ""
    for number, block in enumerate(text.split("\n\n")):
        for line in block.splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if number == 0:
                first.setdefault(key, value)
            if key == "Model":
                board = board or value
    name = first.get("model name") or board or platform.processor() or platform.machine()
    if "cpu family" in first and "model" in first:
        return f"{name} (family {first['cpu family']}, model {first['model']})"
    return name
