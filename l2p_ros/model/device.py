"""Where the model runs and in which float precision: one validated (device, precision) pair.

``resolve_device("cuda:1", "fp16")`` -> ``(torch.device("cuda", 1), torch.float16)``. Every place that
takes a device or precision from a user (CLI flags, node parameters, bench options) goes through it,
so a bad value is a clear ``ValueError`` at start, never a crash on the first frame.

fp16 is CUDA-only: PyTorch's CPU half-precision convolutions are slower than fp32, and this
project's fast CPU path (oneDNN packed and Winograd convolutions) is fp32 only.
"""
from __future__ import annotations

import re

import torch

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}
_DEVICE_PATTERN = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def resolve_device(device: str | torch.device = "cpu", precision: str = "fp32") -> tuple[torch.device, torch.dtype]:
    """Validate a (device, precision) pair; returns the torch device (CUDA index explicit) and dtype.

    ``device``: 'cpu', 'cuda' (the current CUDA device) or 'cuda:N'. ``precision``: 'fp32' or 'fp16'
    (CUDA only). Raises ValueError naming the parameter, the value and why it cannot be used here.
    """
    text = str(device).strip().lower()
    match = _DEVICE_PATTERN.match(text)
    if match is None or (match.group(1) == "cpu" and match.group(2) not in (None, "0")):
        raise ValueError(f"device={device!r} is not a device this model runs on; allowed: 'cpu', 'cuda', 'cuda:N'")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} unknown; allowed: {', '.join(repr(p) for p in PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if match.group(1) == "cpu":
        if dtype != torch.float32:
            raise ValueError(
                f"precision={precision!r} needs a CUDA device, got device={device!r}: CPU inference is fp32 only "
                "(PyTorch's CPU half convolutions are slower than fp32); use precision='fp32' on the CPU"
            )
        return torch.device("cpu"), dtype
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ValueError(
            f"device={device!r} requested but no CUDA device is usable here (torch.cuda.is_available() is False; "
            f"torch {torch.__version__}, {built}); use device='cpu'"
        )
    count = torch.cuda.device_count()
    index = int(match.group(2)) if match.group(2) is not None else torch.cuda.current_device()
    if index >= count:
        raise ValueError(f"device={device!r}: no such CUDA device, this machine has {count} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index), dtype


def precision_name(dtype: torch.dtype) -> str:
    """torch.float32 -> 'fp32', torch.float16 -> 'fp16'; ValueError for any other dtype."""
    for name, value in PRECISIONS.items():
        if value == dtype:
            return name
    raise ValueError(f"dtype {dtype} is not a supported precision; allowed: {', '.join(PRECISIONS)}")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a host timer around it measures it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
