"""Convolutions on the CPU through oneDNN: weights packed once per input shape, Winograd for wide
3x3 layers, the activation fused; in fp32, or in bfloat16 where a caller asks for it.

PyTorch's ``nn.Conv2d`` reorders the weights into oneDNN's blocked layout on every call; packing
them once and fusing the activation (the op PyTorch's own CPU compiler emits) takes 1.5-2x off
YOLO's layers and the bottleneck's encoder and decoder alike. :class:`CpuConvolution` is the one
entry point: the Darknet layers and the bottleneck both run their convolutions through it.
Elsewhere (CUDA, fp16, or an input that needs a gradient) callers take the plain ``nn.Conv2d``.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.1  # Darknet's leaky ReLU; the bottleneck uses the same


def apply_activation(x: Tensor, activation: str) -> Tensor:
    # In place: x is always a fresh tensor produced by the same layer.
    return F.leaky_relu_(x, LEAKY_SLOPE) if activation == "leaky" else x


# oneDNN's fused convolution (the op PyTorch's own CPU compiler emits): weights reordered once into
# its blocked layout instead of on every call, activation fused. Absent on some builds: plain conv2d then.
ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")

# Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16), where oneDNN's bfloat16
# convolutions run 2-4x faster than float32; elsewhere they are emulated and slower.
NATIVE_BF16 = ONEDNN_CONV and any(getattr(torch.cpu, check, lambda: False)()
                                  for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))

# Winograd F(4x4, 3x3) (Lavin & Gray, 2016): Y = A^T [(G g G^T) * (B^T d B)] A, per 6x6 input tile.
WINOGRAD_TILE = 4
_WINOGRAD_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
_WINOGRAD_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
_WINOGRAD_AT = (
    (1, 1, 1, 1, 1, 0),
    (0, 1, -1, 2, -2, 0),
    (0, 1, 1, 4, 4, 0),
    (0, 1, -1, 8, -8, 1),
)
_POINTWISE = ((0, 0), (1, 1), (1, 1))  # (padding, stride, dilation) of a 1x1 convolution
# Below this many channels the tile transforms cost more than the multiplications they save.
WINOGRAD_MIN_CHANNELS = 64
# Packed weights kept per convolution, one per input shape, least recently used dropped first. A
# batch-1 pipeline uses one shape per layer; a batching cloud uses one per batch size it runs
# (SplitDetector.cloud_batch keeps those to powers of two). Each shape holds a packed copy of the
# layer's weights (Winograd: 4x their size), and packing anew costs ~0.3 s for yolov3-tiny.
PACKED_SHAPES_KEPT = 5


def fused_conv(
    x: Tensor, weight: Tensor, bias: Tensor | None, geometry: tuple, groups: int, activation: str
) -> Tensor:
    """oneDNN convolution; ``geometry`` is (padding, stride, dilation)."""
    attr, scalars = ("leaky_relu", [LEAKY_SLOPE]) if activation == "leaky" else ("none", [])
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *geometry, groups, attr, scalars, None)


class PackedConv:
    """Direct convolution, weights in oneDNN's layout for input shape ``in_shape``, computed in
    ``dtype`` (float32, or bfloat16 for an input of that dtype)."""

    def __init__(self, conv: nn.Conv2d, activation: str, in_shape: tuple[int, ...], dtype: torch.dtype = torch.float32):
        self.conv, self.activation = conv, activation
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight.to(dtype), conv.padding, conv.stride, conv.dilation, conv.groups, list(in_shape)
        )
        self.bias = None if conv.bias is None else conv.bias.to(dtype)

    def __call__(self, x: Tensor) -> Tensor:
        conv = self.conv
        geometry = (conv.padding, conv.stride, conv.dilation)
        return fused_conv(x, self.weight, self.bias, geometry, conv.groups, self.activation)


class WinogradConv:
    """3x3 stride-1 pad-1 convolution as Winograd F(4x4, 3x3): up to ~2x faster than direct on CPU.

    Input (N, C, H, W) channels-last is cut into overlapping 6x6 tiles (P of them), each tile
    transformed (B^T d B, one batched matmul), multiplied per tile position (36 independent
    (P x C) @ (C x K) products, run as one oneDNN 1x1 convolution with 36 groups) and transformed
    back to 4x4 outputs (A^T m A). Output (N, K, H, W) channels-last. Rounding differs from direct
    convolution by about 1e-5 relative; results are deterministic.
    """

    def __init__(self, conv: nn.Conv2d, activation: str, in_shape: tuple[int, ...]):
        self.conv, self.activation = conv, activation
        n, channels, height, width = in_shape
        m = WINOGRAD_TILE
        t = m + 2
        self.tiles_hw = (-(-height // m), -(-width // m))
        tile_count = n * self.tiles_hw[0] * self.tiles_hw[1]
        g = torch.tensor(_WINOGRAD_G, dtype=torch.float32)
        bt = torch.tensor(_WINOGRAD_BT, dtype=torch.float32)
        at = torch.tensor(_WINOGRAD_AT, dtype=torch.float32)
        # Transformed filters U[a, b, k, c] = (G g_kc G^T)[a, b] (float64 would change them by <= 1 ulp).
        u = torch.einsum("ai,kcij,bj->abkc", g, conv.weight, g).reshape(t * t * conv.out_channels, channels, 1, 1)
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            u, *_POINTWISE, t * t, [1, t * t * channels, tile_count, 1]
        )
        self.input_transform = torch.kron(bt, bt)  # (36, 36): vec(B^T d B) = kron @ vec(d)
        self.output_transform = torch.kron(at, at)  # (16, 36)

    def __call__(self, x: Tensor) -> Tensor:
        n, c, height, width = x.shape
        k = self.conv.out_channels
        m = WINOGRAD_TILE
        t = m + 2
        th, tw = self.tiles_hw
        p = n * th * tw
        # NHWC view of the channels-last input, zero padded by 1 plus the round-up to whole tiles.
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, tw * m + 1 - width, 1, th * m + 1 - height)).contiguous()
        hp, wp = padded.shape[1:3]
        tiles = padded.as_strided((n, th, tw, t, t, c), (hp * wp * c, m * wp * c, m * c, wp * c, c, 1))
        v = torch.matmul(self.input_transform, tiles.reshape(p, t * t, c))  # (P, 36, C)
        v = v.view(1, p, 1, t * t * c).permute(0, 3, 1, 2)  # (1, 36*C, P, 1) channels-last
        products = fused_conv(v, self.weight, None, _POINTWISE, t * t, "linear")  # (P, 36, K) in memory
        y = torch.matmul(self.output_transform, products.permute(0, 2, 3, 1).reshape(p, t * t, k))  # (P, 16, K)
        if self.conv.bias is not None:
            y = y.add_(self.conv.bias)
        y = apply_activation(y, self.activation)
        y = y.view(n, th, tw, m, m, k).transpose(2, 3).reshape(n, th * m, tw * m, k)[:, :height, :width]
        return y.permute(0, 3, 1, 2)


def version(t: Tensor) -> int:
    # In-place writes bump it; tensors made under inference_mode have none (and can't be written outside it).
    return 0 if t.is_inference() else t._version


def uses_winograd(conv: nn.Conv2d) -> bool:
    return (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and min(conv.in_channels, conv.out_channels) >= WINOGRAD_MIN_CHANNELS
    )


class CpuConvolution:
    """``conv`` followed by ``activation`` ("leaky" or "linear") through oneDNN, its packed weights
    kept for the last ``PACKED_SHAPES_KEPT`` input shapes and packed anew when the weights change
    (an in-place write, ``.to()``, a new state dict).

    With ``bfloat16`` it computes in bfloat16 (direct convolution; takes and returns bfloat16):
    for layers whose output is an approximation anyway, on a CPU that has the instructions for it
    (:data:`NATIVE_BF16`)."""

    def __init__(self, conv: nn.Conv2d, activation: str, bfloat16: bool = False):
        if activation not in ("leaky", "linear"):
            raise ValueError(f"activation {activation!r}: must be 'leaky' or 'linear'")
        self.conv, self.activation, self.bfloat16 = conv, activation, bfloat16
        # input shape -> (weight identity, packed weights); most recently used last
        self._packed: OrderedDict[tuple, tuple[tuple, PackedConv | WinogradConv]] = OrderedDict()
        self._lock = threading.Lock()  # a cloud decodes bottleneck codes on several threads

    def applies(self, x: Tensor) -> bool:
        """Whether ``x`` can take this path: CPU fp32 weights, an fp32 (or bfloat16) input, and no
        gradient wanted (oneDNN's packed weights have no backward)."""
        weight = self.conv.weight
        return (ONEDNN_CONV and weight.device.type == "cpu" and weight.dtype == torch.float32
                and x.dtype in (torch.float32, torch.bfloat16) and not (x.requires_grad and torch.is_grad_enabled()))

    def __call__(self, x: Tensor) -> Tensor:
        """The convolution and activation of ``x`` (N, C, H, W); output channels-last."""
        if self.bfloat16:
            x = x.to(torch.bfloat16)
        return self.packed_for(x)(x.contiguous(memory_format=torch.channels_last))

    def packed_for(self, x: Tensor) -> PackedConv | WinogradConv:
        weight, bias = self.conv.weight, self.conv.bias
        shape = tuple(x.shape)
        identity = (weight.data_ptr(), version(weight),
                    *((bias.data_ptr(), version(bias)) if bias is not None else ()))
        with self._lock:
            entry = self._packed.get(shape)
            if entry is None or entry[0] != identity:
                if entry is not None:  # the weights changed: every packed copy is stale
                    self._packed.clear()
                if self.bfloat16:  # Winograd's transforms would lose too much in bfloat16
                    packed = PackedConv(self.conv, self.activation, shape, torch.bfloat16)
                else:
                    packed = (WinogradConv if uses_winograd(self.conv) else PackedConv)(self.conv, self.activation, shape)
                entry = self._packed[shape] = (identity, packed)
                while len(self._packed) > PACKED_SHAPES_KEPT:
                    self._packed.popitem(last=False)
            self._packed.move_to_end(shape)
            return entry[1]

    def clear(self) -> None:
        """Drop the packed copies (they hold memory)."""
        with self._lock:
            self._packed = OrderedDict()

    # Copies and pickles pack anew: oneDNN's opaque tensors and a lock do not copy.
    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in ("_packed", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _packed=OrderedDict(), _lock=threading.Lock())
