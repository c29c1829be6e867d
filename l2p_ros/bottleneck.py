"""A learned bottleneck codec: a small encoder after a cut on the edge, its decoder on the next tier.

Supervised compression (BottleNet++, Matsubara et al.'s sc2bench): the tensor crossing a cut is
squeezed by a trained encoder into ``channels`` maps of ``bits``-bit codes, sent zstd-compressed
(training prices the codes' entropy, so they come out skewed enough for zstd to shrink them),
and expanded back by a decoder into what the frozen rest of the network expects. The original
layers never change; the teacher is the unmodified model (``bottleneck_training``), so no labels
are needed.

Its file format and checks are ``l2p_ros.bottleneck_file`` (no torch).

On the wire (codec ``bn:NAME``): one :class:`codec.TensorRecord` for the cut's layer with shape
(N, channels, H, W), dtype ``uint8`` and zstd data; every code must be below ``2**bits``. Codec
``bn:NAME+ctx`` sends the same record with the codes range-coded by the context model the file
carries (``l2p_ros.context_coder``): the same codes, so the same detections, in fewer bytes.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import zstandard
from torch import nn

from l2p_ros.bottleneck_file import (CONTEXT_KEY, BottleneckError, BottleneckInfo, read_bottleneck, resolve_path,
                                     write_bottleneck)
from l2p_ros.codec import ZSTD_LEVEL, TensorRecord, decompress_exact, record_fields
from l2p_ros.codec_spec import PayloadError
from l2p_ros.context_coder import ContextModel
from l2p_ros.model.cpu_conv import LEAKY_SLOPE, NATIVE_BF16, CpuConvolution

__all__ = ["Bottleneck", "BottleneckError", "BottleneckInfo", "decode_codes", "encode_codes", "load_bottleneck",
           "resolve_path"]


class Bottleneck(nn.Module):
    """Encoder (crossing tensor -> ``bits``-bit codes) and decoder (codes -> crossing tensor).

    Sized to cost the edge little: a 1x1 then a 3x3 convolution down to ``channels``; the decoder
    two 3x3 convolutions and a 1x1 back to the crossing width. Each side's hidden width is its own
    (``hidden``, ``decoder_width``): each has its own budget, a tenth of the layers beside it.
    Codes are ``round(sigmoid(encoder(x)) * (2**bits - 1))``; training passes gradients through the
    rounding unchanged (straight-through).
    """

    def __init__(self, info: BottleneckInfo, context: ContextModel | None = None):
        super().__init__()
        self.info = info
        self.context = context  # its codes' context model (codec +ctx), fitted after training
        width, hidden, channels, wide = info.crossing_shape[0], info.hidden, info.channels, info.decoder_width
        self.encoder = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.LeakyReLU(LEAKY_SLOPE),
                                     nn.Conv2d(hidden, channels, 3, padding=1))
        self.decoder = nn.Sequential(nn.Conv2d(channels, wide, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
                                     nn.Conv2d(wide, wide, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
                                     nn.Conv2d(wide, width, 1))
        # Inference takes the Darknet layers' CPU path where it can (fp32 weights, no gradient):
        # weights packed once, activations fused, Winograd for the wide 3x3; half the time of
        # nn.Conv2d. The decoder computes in bfloat16 where the CPU does so natively (a third
        # of its fp32 time again): what it outputs is an approximation of the crossing tensor
        # anyway (bfloat16 moves it by ~2e-5 of its variance; on the held-out sets one shipped
        # bottleneck lost 2 of 746 detections, the other none). The encoder stays fp32, so the
        # codes sent are the same on every CPU.
        self._cpu_encoder = _cpu_stages(self.encoder)
        self.set_decoder_bfloat16(NATIVE_BF16)

    def set_decoder_bfloat16(self, enabled: bool) -> None:
        """Whether the CPU path of :meth:`decode` computes in bfloat16 (default: where the CPU
        does so natively, ``cpu_conv.NATIVE_BF16``)."""
        self.decoder_bfloat16 = bool(enabled)
        self._cpu_decoder = _cpu_stages(self.decoder, self.decoder_bfloat16)

    def encode(self, crossing: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) crossing tensor -> (N, channels, H, W) uint8 codes."""
        levels = self.info.levels
        return torch.round(torch.sigmoid(_run(self.encoder, self._cpu_encoder, crossing)) * levels).to(torch.uint8)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """uint8 codes -> the crossing tensor the rest of the network takes, in the decoder's dtype."""
        weight = self.decoder[0].weight
        decoded = _run(self.decoder, self._cpu_decoder, codes.to(device=weight.device, dtype=weight.dtype) / self.info.levels)
        return decoded.to(weight.dtype)

    def forward(self, crossing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: encode, quantize with a straight-through gradient, decode. Returns the
        decoded tensor and the codes before rounding (in code units, 0..levels), which the rate
        term of training prices (``bottleneck_training.CodeRate``)."""
        levels = self.info.levels
        soft = torch.sigmoid(self.encoder(crossing)) * levels
        hard = torch.round(soft)
        return self.decoder((soft + (hard - soft).detach()) / levels), soft

    def _apply(self, fn, recurse=True):
        # .to()/.half()/.cuda() make new weights: drop the packed copies of the old ones (they hold memory).
        for stage in (*self._cpu_encoder, *self._cpu_decoder):
            stage.clear()
        return super()._apply(fn, recurse)

    # ---- file format -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        arrays = {name: value.detach().float().cpu().numpy() for name, value in self.state_dict().items()}
        if self.context is not None:
            arrays[CONTEXT_KEY] = self.context.probabilities
        return write_bottleneck(path, self.info, arrays)


def _cpu_stages(sequential: nn.Sequential, bfloat16: bool = False) -> list[CpuConvolution]:
    """The convolutions of a (Conv2d, LeakyReLU, ...) Conv2d sequence, each with its activation."""
    convolutions = list(sequential)[::2]
    return [CpuConvolution(conv, "leaky" if index < len(convolutions) - 1 else "linear", bfloat16)
            for index, conv in enumerate(convolutions)]


def _run(sequential: nn.Sequential, stages: list[CpuConvolution], x: torch.Tensor) -> torch.Tensor:
    """``sequential(x)``, through ``stages`` where they apply (output channels-last then)."""
    if not stages[0].applies(x):
        return sequential(x)
    for stage in stages:
        x = stage(x)
    return x


def load_bottleneck(name_or_path: str | Path, *, model_id: str | None = None,
                    weights_fingerprint: str | None = None) -> Bottleneck:
    """A bottleneck module from its file (:func:`bottleneck_file.read_bottleneck` checks it whole),
    eval-mode and frozen; BottleneckError when its arrays do not fit the architecture it records."""
    info, arrays = read_bottleneck(name_or_path, model_id=model_id, weights_fingerprint=weights_fingerprint)
    context = arrays.pop(CONTEXT_KEY, None)
    try:
        bottleneck = Bottleneck(info, None if context is None else ContextModel(context, info.levels))
    except ValueError as error:
        raise BottleneckError(f"{resolve_path(name_or_path)}: its context model does not fit it ({error})") from None
    if context is not None and bottleneck.context.channels != info.channels:
        raise BottleneckError(f"{resolve_path(name_or_path)}: its context model has "
                              f"{bottleneck.context.channels} channels, its codes {info.channels}")
    try:
        bottleneck.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()}, strict=True)
    except RuntimeError as error:
        raise BottleneckError(f"{resolve_path(name_or_path)}: tensors do not fit the architecture it records "
                              f"({error})") from None
    bottleneck.eval()
    bottleneck.requires_grad_(False)
    return bottleneck


# ---- wire --------------------------------------------------------------------------------------


def encode_codes(layer_index: int, codes: torch.Tensor, context: ContextModel | None = None) -> list[TensorRecord]:
    """The codes of one frame (or batch) as the single record a ``bn:`` FeatureMap carries: zstd'd,
    or range-coded with ``context`` (``bn:NAME+ctx``)."""
    array = np.ascontiguousarray(codes.detach().cpu().numpy().astype(np.uint8, copy=False))
    data = (zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(array.tobytes()) if context is None
            else context.encode(array))
    return [TensorRecord(int(layer_index), tuple(array.shape), "uint8", (), (), data)]


def decode_codes(records: list[TensorRecord], info: BottleneckInfo, batch: int = 1,
                 context: ContextModel | None = None) -> torch.Tensor:
    """Received records -> uint8 codes (batch, channels, H, W), zstd'd or (with ``context``)
    range-coded; PayloadError for anything else."""
    try:
        records = list(records)
    except TypeError as error:
        raise PayloadError(f"records must be a sequence of TensorRecord: {error}") from None
    if len(records) != 1:
        raise PayloadError(f"a bottleneck payload is one record, got {len(records)}")
    layer_index, shape, dtype, scale, zero_point, data = record_fields(records[0], 0)
    expected = (batch, *info.code_shape)
    where = f"bottleneck codes for layer {layer_index}"
    if layer_index != info.cut_after_layer:
        raise PayloadError(f"bottleneck codes for layer {info.cut_after_layer} expected, got layer {layer_index}")
    if shape != expected or dtype != "uint8" or scale or zero_point:
        raise PayloadError(f"{where}: uint8 {expected} without quantization parameters expected, got "
                           f"{dtype} {shape} with {len(scale)} scales")
    if context is not None:
        codes = context.decode(data, expected)
    else:
        raw = decompress_exact(where, "zstd", data, math.prod(expected))
        codes = np.frombuffer(raw, dtype=np.uint8).reshape(expected)
    if int(codes.max(initial=0)) > info.levels:
        raise PayloadError(f"{where}: a code above {info.levels}, the largest {info.bits}-bit code")
    return torch.from_numpy(codes.copy())
