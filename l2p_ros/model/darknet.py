"""A Darknet network (YOLOv3 family) as an indexed list of PyTorch layers.

``Darknet.layers[i]`` is Darknet layer ``i`` of the .cfg, and :meth:`Darknet.layer_forward` is the
one function that runs a layer: the full forward pass and split (head/tail) execution both go through
it, so a split run is bit-identical to a full one.

Numerics follow Darknet: batch norm is ``(x - mean) / (sqrt(var) + 1e-6) * scale + bias`` (folded into
the convolution at load time), leaky ReLU slope 0.1, max-pool windows ignore positions outside the
input, yolo layers emit decoded boxes in network-input pixels.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2p_ros.assets import asset_path
from l2p_ros.model.cfg import PRETRAINED_WEIGHTS, CfgError, LayerSpec, NetworkSpec, model_cfg_path, parse_cfg
from l2p_ros.model.cpu_conv import ONEDNN_CONV, CpuConvolution, apply_activation
from l2p_ros.model.device import resolve_device

BN_EPS = 1e-6  # Darknet's normalize_cpu: (x - mean) / (sqrt(var) + .000001f)
RANDOM_SEED = 0


class WeightsError(ValueError):
    """A Darknet .weights file that does not fit the network, or weights that are unavailable."""


def _activation(spec: LayerSpec) -> str:
    name = spec.options.get("activation", "linear")
    if name not in ("leaky", "linear"):
        raise CfgError(f"layer {spec.index} ({spec.type}): unsupported activation '{name}'")
    return name


class ConvLayer(nn.Module):
    """Darknet [convolutional]: conv (batch norm folded into weight and bias) + leaky/linear.

    Input (N, C_in, H, W) -> output (N, filters, H', W'). On CPU in fp32 it runs through oneDNN with
    weights packed on the first call for each input shape (and again if the weights change; the
    last ``cpu_conv.PACKED_SHAPES_KEPT`` shapes are kept, so batch sizes can alternate without repacking):
    Winograd for 3x3 stride-1 layers with >= 64 channels, direct convolution otherwise. Elsewhere
    (CUDA, fp16) it is the plain ``nn.Conv2d`` (cuDNN). An input of another float dtype than the
    weights (the fp32 image of an fp16 model) is cast to the weights' dtype first.
    """

    def __init__(self, spec: LayerSpec, in_channels: int):
        super().__init__()
        size = spec.get_int("size", 1)
        stride = spec.get_int("stride", 1)
        padding = size // 2 if spec.get_int("pad", 0) else spec.get_int("padding", 0)
        self.groups = spec.get_int("groups", 1)
        self.batch_normalize = bool(spec.get_int("batch_normalize", 0))
        self.activation = _activation(spec)
        if in_channels % self.groups:
            raise CfgError(f"layer {spec.index}: {in_channels} input channels, not divisible by groups={self.groups}")
        # Built on "meta" (no memory, no default init), then zero weights: the real ones come from a
        # .weights file or init_random_weights.
        filters = spec.get_int("filters")
        self.conv = nn.Conv2d(in_channels, filters, size, stride, padding, groups=self.groups, device="meta")
        shape = self.conv.weight.shape
        self.conv.weight = nn.Parameter(torch.empty(shape, memory_format=torch.channels_last).zero_())
        self.conv.bias = nn.Parameter(torch.zeros(shape[0]))
        self.cpu = CpuConvolution(self.conv, self.activation)

    def forward(self, x: Tensor) -> Tensor:
        # Canonical layout first: the same data in any layout gives the same bits.
        x = x.contiguous(memory_format=torch.channels_last)
        if x.dtype != self.conv.weight.dtype:
            x = x.to(self.conv.weight.dtype)
        # An input that needs a gradient (training a bottleneck through the frozen tail) takes the
        # plain convolution: oneDNN's packed weights have no backward.
        if not self.cpu.applies(x):
            return apply_activation(self.conv(x), self.activation)
        return self.cpu(x)

    def _apply(self, fn, recurse=True):
        # .to()/.half()/.cuda() make new weights: drop the packed copy of the old ones (it holds memory).
        self.cpu.clear()
        return super()._apply(fn, recurse)

    def darknet_float_count(self) -> int:
        out_channels = self.conv.out_channels
        per_channel = 4 if self.batch_normalize else 1  # (bias, scale, mean, var) or bias
        return out_channels * per_channel + self.conv.weight.numel()


class MaxPoolLayer(nn.Module):
    """Darknet [maxpool]: windows ignore positions outside the input (never zero padding).

    Darknet pads ``padding`` (default size-1) in total, ``padding // 2`` before; outside positions
    are skipped, which equals padding with -inf. Size 2 stride 1 thus replicates the last row/column.
    On CPU a separable max of strided views (PyTorch's CPU max_pool2d is ~10x slower); elsewhere
    ``max_pool2d`` on the -inf padded input (one kernel instead of several). Both are exact.
    """

    def __init__(self, spec: LayerSpec, in_hw: tuple[int, int]):
        super().__init__()
        self.size = spec.get_int("size", spec.get_int("stride", 1))
        self.stride = spec.get_int("stride", 1)
        padding = spec.get_int("padding", self.size - 1)
        self.pad_before = padding // 2
        self.out_hw = tuple((n + padding - self.size) // self.stride + 1 for n in in_hw)
        # Rows/columns the windows reach past the input's far edge.
        self.pad_after = tuple(
            max(0, (o - 1) * self.stride + self.size - self.pad_before - n) for o, n in zip(self.out_hw, in_hw)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self._padded(x)
        if x.device.type != "cpu":
            return self._pool(x)
        x = self._max_along(x, 3, self.out_hw[1])
        return self._max_along(x, 2, self.out_hw[0])

    def _padded(self, x: Tensor) -> Tensor:
        if self.pad_before or any(self.pad_after):
            pad = (self.pad_before, self.pad_after[1], self.pad_before, self.pad_after[0])
            x = F.pad(x, pad, value=-math.inf)
        return x

    def _pool(self, padded: Tensor) -> Tensor:
        """The same windows as one max_pool2d over the already padded input."""
        out = F.max_pool2d(padded, self.size, self.stride)
        return out[..., : self.out_hw[0], : self.out_hw[1]]

    def _max_along(self, x: Tensor, dim: int, out_len: int) -> Tensor:
        span = (out_len - 1) * self.stride + 1
        result = x.narrow(dim, 0, span)[self._strided(dim)]
        for offset in range(1, self.size):
            result = torch.maximum(result, x.narrow(dim, offset, span)[self._strided(dim)])
        return result

    def _strided(self, dim: int) -> tuple[slice, ...]:
        return (slice(None),) * dim + (slice(None, None, self.stride),)


class UpsampleLayer(nn.Module):
    """Darknet [upsample]: nearest neighbour, (N, C, H, W) -> (N, C, H*stride, W*stride)."""

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.stride = spec.get_int("stride", 2)
        if self.stride < 1:
            raise CfgError(f"layer {spec.index}: upsample stride must be >= 1, got {self.stride}")

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.stride, mode="nearest")


class RouteLayer(nn.Module):
    """Darknet [route]: concatenates its inputs along channels, optionally keeping one channel group."""

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.groups = spec.get_int("groups", 1)
        self.group_id = spec.get_int("group_id", 0)

    def forward(self, *inputs: Tensor) -> Tensor:
        if self.groups > 1:
            inputs = tuple(x.chunk(self.groups, dim=1)[self.group_id] for x in inputs)
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)


class ShortcutLayer(nn.Module):
    """Darknet [shortcut]: previous layer + layer ``from`` (same shape), then the activation."""

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.activation = _activation(spec)

    def forward(self, previous: Tensor, other: Tensor) -> Tensor:
        return apply_activation(previous + other, self.activation)


class YoloLayer(nn.Module):
    """Darknet [yolo], decoded: (N, A*(5+C), H, W) -> (N, H*W*A, 5+C).

    Row ``(y*W + x)*A + a`` (OpenCV's order, and free to produce from channels-last memory) holds
    ``[cx, cy, w, h, objectness, class_0 .. class_C-1]``: box centre and size in network-input pixels,
    sigmoid objectness, sigmoid class probabilities (not multiplied by objectness). Always float32,
    whatever the model's precision: boxes in fp16 would be quantized to 0.25 px above 256 px.
    """

    def __init__(self, spec: LayerSpec, in_hw: tuple[int, int], input_size: int):
        super().__init__()
        self.num_classes = spec.get_int("classes", 20)  # Darknet's default
        anchors = spec.get_ints("anchors")
        mask = spec.get_ints("mask") if "mask" in spec.options else list(range(len(anchors) // 2))
        if float(spec.options.get("scale_x_y", 1)) != 1 or int(spec.options.get("new_coords", 0)):
            raise CfgError(f"layer {spec.index}: scale_x_y/new_coords (YOLOv4 decoding) are not supported")
        self.num_anchors = len(mask)
        height, width = in_hw
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        cells = torch.stack([xs, ys], dim=-1).float().reshape(height * width, 1, 2)
        anchor_wh = torch.tensor([[anchors[2 * m], anchors[2 * m + 1]] for m in mask], dtype=torch.float32)
        rows = height * width * self.num_anchors
        self.register_buffer("cell_xy", cells.expand(-1, self.num_anchors, -1).reshape(rows, 2))
        self.register_buffer("anchor_wh_px", anchor_wh.expand(height * width, -1, -1).reshape(rows, 2))
        self.register_buffer("stride_xy_px", torch.tensor([input_size / width, input_size / height]))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] > 1:
            # Image by image: element-wise kernels split a larger tensor differently across threads,
            # which changes last bits; this way each image of a batch decodes as it does alone.
            return torch.cat([self._decode(x[i: i + 1]) for i in range(x.shape[0])])
        return self._decode(x)

    def _decode(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        # channels-last memory is (N, H, W, A*(5+C)): the permute+reshape below is a view.
        nhwc = x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        p = nhwc.reshape(n, -1, 5 + self.num_classes).float()  # no-op in fp32
        # The buffers hold small integers (cells, anchors, strides): exact in fp16 too.
        xy = (p[..., 0:2].sigmoid() + self.cell_xy.float()) * self.stride_xy_px.float()
        wh = p[..., 2:4].exp() * self.anchor_wh_px.float()
        return torch.cat([xy, wh, p[..., 4:].sigmoid()], dim=-1)


class Darknet(nn.Module):
    """A Darknet cfg as PyTorch layers; ``layers[i]`` is Darknet layer i.

    Weights are zero until :meth:`load_darknet_weights` or :meth:`init_random_weights`; use
    :func:`load_model` for a ready, eval-mode network. Input: (N, 3, S, S) RGB in 0..1 with
    S = ``input_size`` (moved to the model's device and dtype); output: one (N, H*W*A, 5+C) float32
    tensor per yolo layer (see :class:`YoloLayer`). :meth:`to_device` moves it to a validated
    (device, precision), e.g. ('cuda', 'fp16').
    ``output_shapes[i]`` is layer i's batch-1 output shape, known without running the network.

    Same input, same bits: results are deterministic for a given machine and thread count
    (``torch.set_num_threads``); a different thread count may change the last bits.
    """

    def __init__(self, spec: NetworkSpec, input_size: int = 416):
        super().__init__()
        self.spec = spec
        self.input_size = input_size
        # What the weights are: the sha256 of the .weights file loaded, or the random seed. A
        # learned bottleneck records it, since it only fits the weights it was distilled from.
        self.weights_fingerprint = "none"
        self.layers = nn.ModuleList()
        self.output_shapes: list[tuple[int, ...]] = []
        self.yolo_indices: list[int] = []
        input_shape = (1, spec.input_channels, input_size, input_size)
        for layer in spec.layers:
            in_shapes = [input_shape if i < 0 else self.output_shapes[i] for i in layer.inputs]
            module, shape = self._build(layer, in_shapes)
            self.layers.append(module)
            self.output_shapes.append(shape)
        classes = {self.layers[i].num_classes for i in self.yolo_indices}
        if len(classes) != 1:
            raise CfgError(f"{spec.name}: needs [yolo] layers that agree on one class count, found {sorted(classes)}")
        self.num_classes = classes.pop()
        # Layer i's output is dropped after the last layer that reads it; yolo outputs are kept.
        self._last_consumer = {i: i for i in range(len(spec.layers))}
        for layer in spec.layers:
            for i in layer.inputs:
                if i >= 0:
                    self._last_consumer[i] = layer.index
        self._release_after: list[list[int]] = [[] for _ in spec.layers]
        for i, last in self._last_consumer.items():
            if i not in self.yolo_indices:
                self._release_after[last].append(i)

    def _build(self, spec: LayerSpec, in_shapes: list[tuple[int, ...]]) -> tuple[nn.Module, tuple[int, ...]]:
        first = in_shapes[0]
        n, c, h, w = first
        if spec.type == "convolutional":
            module = ConvLayer(spec, c)
            conv = module.conv
            out_h = (h + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
            out_w = (w + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
            return module, (n, conv.out_channels, out_h, out_w)
        if spec.type == "maxpool":
            module = MaxPoolLayer(spec, (h, w))
            return module, (n, c, *module.out_hw)
        if spec.type == "upsample":
            module = UpsampleLayer(spec)
            return module, (n, c, h * module.stride, w * module.stride)
        if spec.type == "route":
            module = RouteLayer(spec)
            if any(s[2:] != (h, w) for s in in_shapes):
                raise CfgError(f"layer {spec.index}: route inputs {spec.inputs} differ in size: {in_shapes}")
            if any(s[1] % module.groups for s in in_shapes):
                raise CfgError(f"layer {spec.index}: route input channels {in_shapes} not divisible by groups")
            return module, (n, sum(s[1] for s in in_shapes) // module.groups, h, w)
        if spec.type == "shortcut":
            if in_shapes[0] != in_shapes[1]:
                raise CfgError(f"layer {spec.index}: shortcut inputs {spec.inputs} differ in shape: {in_shapes}")
            return ShortcutLayer(spec), first
        if spec.type == "yolo":
            module = YoloLayer(spec, (h, w), self.input_size)
            if c != module.num_anchors * (5 + module.num_classes):
                expected = module.num_anchors * (5 + module.num_classes)
                raise CfgError(f"layer {spec.index}: yolo expects {expected} input channels, gets {c}")
            self.yolo_indices.append(spec.index)
            return module, (n, h * w * module.num_anchors, 5 + module.num_classes)
        raise CfgError(f"layer {spec.index}: unsupported type [{spec.type}]")

    def layer_forward(self, i: int, inputs: list[Tensor]) -> Tensor:
        """Run layer i on the outputs of ``spec.layers[i].inputs``, in that order (the image for -1).

        Inputs may come in any memory layout (e.g. NCHW-contiguous from a decoder): the result is
        bit-identical. Call it under ``torch.inference_mode()`` for speed, as :meth:`forward` does.
        """
        return self.layers[i](*inputs)

    @property
    def device(self) -> torch.device:
        """Where the weights are (all of them: the model is moved as a whole)."""
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    @property
    def packs_per_input_shape(self) -> bool:
        """Whether convolutions pack weights per input shape (CPU fp32 with oneDNN): each batch size
        run then holds its own packed copy, so a batching caller should use few distinct sizes."""
        return ONEDNN_CONV and self.device.type == "cpu" and self.dtype == torch.float32

    @property
    def dtype(self) -> torch.dtype:
        """The weights' float dtype: float32 ('fp32') or float16 ('fp16')."""
        first = next(self.parameters(), None)
        return first.dtype if first is not None else torch.float32

    def to_device(self, device: str | torch.device = "cpu", precision: str = "fp32") -> Darknet:
        """Move to a validated device and precision (see :func:`resolve_device`); returns self.

        Raises ValueError (before moving anything) for an unknown device, CUDA where there is none, or
        fp16 on the CPU.
        """
        torch_device, dtype = resolve_device(device, precision)
        if (self.device, self.dtype) == (torch_device, dtype):
            return self  # .to() would drop the CPU's packed weights for nothing
        return self.to(device=torch_device, dtype=dtype)

    @torch.inference_mode()
    def forward(self, x: Tensor) -> list[Tensor]:
        """(N, 3, S, S) image batch -> yolo outputs in ``yolo_indices`` order (inference tensors)."""
        outputs: dict[int, Tensor] = {-1: x.to(device=self.device, dtype=self.dtype)}  # no-op when already so
        for layer in self.spec.layers:
            outputs[layer.index] = self.layer_forward(layer.index, [outputs[i] for i in layer.inputs])
            for i in self._release_after[layer.index]:
                del outputs[i]
        return [outputs[i] for i in self.yolo_indices]

    def conv_layers(self) -> list[ConvLayer]:
        return [m for m in self.layers if isinstance(m, ConvLayer)]

    def darknet_float_count(self) -> int:
        """Number of float32 values a .weights file for this network holds after its header."""
        return sum(conv.darknet_float_count() for conv in self.conv_layers())

    @torch.no_grad()
    def load_darknet_weights(self, path: str | Path) -> None:
        """Load a Darknet .weights file, folding batch norm into the convolutions.

        Raises FileNotFoundError, or WeightsError when the file does not hold exactly this network's
        weights (the message names the file and both float counts).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Darknet weights not found: {path}")
        expected = self.darknet_float_count()
        with path.open("rb") as f:
            version = np.fromfile(f, dtype=np.int32, count=3)  # major, minor, revision
            if version.size < 3:
                raise WeightsError(f"{path} is too short to be a Darknet .weights file")
            major, minor = int(version[0]), int(version[1])
            # Darknet's rule: "seen" (images trained on) is 64-bit from version 0.2 on.
            seen_bytes = 8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4
            header_bytes = 12 + seen_bytes
            body_bytes = path.stat().st_size - header_bytes
            if body_bytes != 4 * expected:
                raise WeightsError(
                    f"{path} does not match {self.spec.name}: expected {expected} float32 weights after the "
                    f"{header_bytes}-byte header, found {body_bytes / 4:.12g}"
                )
            f.seek(0)
            digest = hashlib.sha256(f.read(header_bytes))
            body = np.fromfile(f, dtype=np.float32, count=expected)
        # The file's sha256 from the bytes just read (header + exactly ``expected`` floats, checked
        # above): the weights are read from disk once.
        digest.update(body.data)
        self.weights_fingerprint = "sha256:" + digest.hexdigest()
        weights = torch.from_numpy(body)
        offset = 0

        def take(like: Tensor) -> Tensor:
            nonlocal offset
            chunk = weights[offset: offset + like.numel()].view_as(like)
            offset += like.numel()
            return chunk

        for layer in self.conv_layers():
            conv = layer.conv
            bias = take(conv.bias)
            if layer.batch_normalize:
                scale, mean, var = take(conv.bias), take(conv.bias), take(conv.bias)
                factor = scale / (var.sqrt() + BN_EPS)
                conv.weight.copy_(take(conv.weight) * factor.view(-1, 1, 1, 1))
                conv.bias.copy_(bias - mean * factor)
            else:
                conv.bias.copy_(bias)
                conv.weight.copy_(take(conv.weight))

    @torch.no_grad()
    def save_darknet_weights(self, path: str | Path) -> None:
        """Write the (folded) weights as a Darknet .weights file (version 0.2, seen = 0).

        Batch-norm layers are written as bias, scale, mean=0, var=1 with ``scale = sqrt(1) + eps``, so
        that loading the file back folds to exactly the same weights.
        """
        unit_scale = torch.ones(1).sqrt() + BN_EPS
        parts = []
        for layer in self.conv_layers():
            conv = layer.conv
            parts.append(conv.bias.cpu())
            if layer.batch_normalize:
                channels = conv.bias.shape
                parts += [unit_scale.expand(channels), torch.zeros(channels), torch.ones(channels)]
            parts.append(conv.weight.cpu().contiguous().view(-1))
        with Path(path).open("wb") as f:
            np.array([0, 2, 0], dtype=np.int32).tofile(f)
            np.array([0], dtype=np.int64).tofile(f)
            torch.cat(parts).numpy().astype(np.float32).tofile(f)

    @torch.no_grad()
    def init_random_weights(self, seed: int = RANDOM_SEED) -> None:
        """Deterministic He-normal weights and zero biases, for latency/size profiling only.

        Convolutions that feed a shortcut start 10x smaller, so activations stay finite through
        YOLOv3's 23 residual additions (detections remain meaningless).
        """
        generator = torch.Generator().manual_seed(seed)
        self.weights_fingerprint = f"random-seed-{seed}"
        feeds_shortcut = {spec.inputs[0] for spec in self.spec.layers if spec.type == "shortcut"}
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, ConvLayer):
                continue
            weight = layer.conv.weight
            fan_in = weight[0].numel()
            gain = 0.1 if index in feeds_shortcut else 1.0
            std = gain * math.sqrt(2.0 / fan_in)
            weight.copy_(torch.randn(weight.shape, generator=generator) * std)
            layer.conv.bias.zero_()


def _check_input_size(input_size: int) -> None:
    if not isinstance(input_size, int) or input_size <= 0 or input_size % 32:
        raise ValueError(f"input_size must be a positive multiple of 32 (320, 416, 608, ...), got {input_size!r}")


def load_model(
    model: str | Path,
    input_size: int = 416,
    weights: Path | None = None,
    random_weights: bool = False,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> Darknet:
    """An eval-mode, gradient-free Darknet ready for inference on ``device`` in ``precision``.

    ``model`` is 'yolov3', 'yolov3-tiny' or a .cfg path. Without ``weights``, 'yolov3-tiny' uses the
    cached pretrained COCO weights; other models need ``weights`` or ``random_weights=True``
    (seeded, deterministic, for latency/profiling only). ``device`` is 'cpu', 'cuda' or 'cuda:N';
    ``precision`` 'fp32' or 'fp16' (CUDA only). Weights are loaded (and batch norm folded) in fp32
    on the CPU, then moved. A bad device or precision raises ValueError before anything is loaded.
    """
    _check_input_size(input_size)
    torch_device, dtype = resolve_device(device, precision)
    if weights is not None and random_weights:
        raise ValueError("pass either weights or random_weights, not both")
    name = str(model)
    net = Darknet(parse_cfg(model_cfg_path(name)), input_size)
    if weights is not None:
        net.load_darknet_weights(weights)
    elif random_weights:
        warnings.warn(
            f"{net.spec.name}: random weights (seed {RANDOM_SEED}); detections are meaningless, "
            "use this model for latency/size profiling only",
            stacklevel=2,
        )
        net.init_random_weights(RANDOM_SEED)
    elif name in PRETRAINED_WEIGHTS:
        net.load_darknet_weights(asset_path(PRETRAINED_WEIGHTS[name]))
    else:
        raise WeightsError(
            f"no pretrained weights for '{name}' are available offline: pass --weights PATH "
            "(a Darknet .weights file) or --random-weights (latency/profiling only, meaningless detections)"
        )
    net.eval()
    net.requires_grad_(False)
    return net.to(device=torch_device, dtype=dtype)
