"""The CPU convolution path (oneDNN, packed weights, Winograd, bfloat16) against PyTorch's own
convolution, on the shapes the model and the bottleneck use."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from l2p_ros.model.cpu_conv import LEAKY_SLOPE, NATIVE_BF16, ONEDNN_CONV, CpuConvolution, uses_winograd

pytestmark = pytest.mark.skipif(not ONEDNN_CONV, reason="this PyTorch build has no oneDNN fused convolution")


def reference(conv: nn.Conv2d, activation: str, x: torch.Tensor) -> torch.Tensor:
    y = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return F.leaky_relu(y, LEAKY_SLOPE) if activation == "leaky" else y


@pytest.mark.parametrize("in_channels, out_channels, kernel, bias, activation", [
    (32, 64, 3, True, "leaky"),     # direct (too few channels for Winograd)
    (64, 96, 3, True, "leaky"),     # Winograd
    (64, 96, 3, False, "linear"),   # Winograd without a bias
    (96, 32, 1, False, "linear"),   # 1x1, no bias
])
def test_matches_pytorch_in_fp32_and_bfloat16(in_channels, out_channels, kernel, bias, activation):
    torch.manual_seed(0)
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=bias).requires_grad_(False)
    x = torch.randn(2, in_channels, 13, 17)
    want = reference(conv, activation, x)
    fast = CpuConvolution(conv, activation)
    assert fast.applies(x)
    assert uses_winograd(conv) == (kernel == 3 and min(in_channels, out_channels) >= 64)
    got = fast(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert torch.equal(fast(x), got) and torch.equal(copy.deepcopy(fast)(x), got)  # a copy packs its own
    if NATIVE_BF16:
        rounded = CpuConvolution(conv, activation, bfloat16=True)(x)
        assert rounded.dtype == torch.bfloat16
        assert float(((rounded.float() - want) ** 2).mean() / want.var()) < 1e-4


def test_weights_changed_in_place_are_packed_again_and_gradients_take_the_plain_path():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3, padding=1)
    fast = CpuConvolution(conv, "linear")
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        first = fast(x)
        conv.weight.mul_(2)
        second = fast(x)
        assert float((second - reference(conv, "linear", x)).abs().max()) < 1e-3
    assert not torch.allclose(first, second)
    assert not fast.applies(x.requires_grad_())  # packed weights have no backward
    with pytest.raises(ValueError, match="activation"):
        CpuConvolution(conv, "relu")
