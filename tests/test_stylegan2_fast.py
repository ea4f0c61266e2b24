"""The fast synthesis paths equal their literal references (upsampling, fused/non-fused modulation, in-place
activation, cached weight statistics), and the precision options do what they say. CPU only."""

from __future__ import annotations

import math

import pytest
import torch

from gghead_core import Generator, GeneratorConfig
from gghead_core.stylegan2 import (
    FP16_CONV_CLAMP,
    fir_filter2d,
    fp32_precision,
    make_fir_filter,
    modulated_conv2d,
    upsample2d,
    upsample2d_reference,
    weight_cache,
)


def _reference_modulated_conv(x, weight, styles, *, demodulate, up, fir, padding, gain=1.0):
    """The textbook per-sample formula: modulate, demodulate, one convolution per head (spec 3.3)."""
    outs = []
    for b in range(x.shape[0]):
        w = weight * styles[b].reshape(1, -1, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        xb = x[b : b + 1]
        if up == 1:
            y = torch.nn.functional.conv2d(xb, w, padding=padding)
        else:
            y = torch.nn.functional.conv_transpose2d(xb, w.transpose(0, 1), stride=2)
            y = fir_filter2d(y, fir, (1, 1, 1, 1), gain=4.0)
        outs.append(y * gain)
    return torch.cat(outs)


def _random_generator(**overrides) -> Generator:
    torch.manual_seed(0)
    cfg = dict(channel_base=2048, channel_max=32, plane_resolution=64, n_uniform_flame_vertices=64)
    cfg.update(overrides)
    G = Generator(GeneratorConfig(**cfg)).eval().requires_grad_(False)
    with torch.no_grad():
        for p in G.parameters():
            p.normal_(0, 0.5)
    return G


@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample2d_equals_zero_insertion_reference(channels_last):
    torch.manual_seed(1)
    x = torch.randn(2, 5, 7, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    f = make_fir_filter((1, 3, 3, 1))
    fast, ref = upsample2d(x, f), upsample2d_reference(x, f)
    assert fast.shape == ref.shape == (2, 5, 14, 18)
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=1e-6)
    # an asymmetric filter catches a flip mistake that [1, 3, 3, 1] would hide
    g = make_fir_filter((1, 2, 3, 5))
    torch.testing.assert_close(upsample2d(x, g), upsample2d_reference(x, g), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("use_cache", [False, True])
def test_modulated_conv_matches_per_sample_reference(batch, up, use_cache):
    torch.manual_seed(2)
    x = torch.randn(batch, 6, 8, 8)
    weight = torch.randn(4, 6, 3, 3)
    styles = torch.randn(batch, 6)
    fir = make_fir_filter((1, 3, 3, 1))
    cache = weight_cache(weight, None, transpose=up != 1) if use_cache else None
    out = modulated_conv2d(x, weight, styles, demodulate=True, up=up, fir=fir, padding=1, gain=math.sqrt(2),
                           cache=cache)
    ref = _reference_modulated_conv(x, weight, styles, demodulate=True, up=up, fir=fir, padding=1,
                                    gain=math.sqrt(2))
    assert out.shape == ref.shape == (batch, 4, 8 * up, 8 * up)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)


def test_weight_cache_follows_in_place_changes_and_skips_autograd():
    w = torch.randn(4, 6, 3, 3)
    a = weight_cache(w, None, transpose=True)
    assert weight_cache(w, a, transpose=True) is a
    w.mul_(2)  # version bump: stale statistics must not be reused
    b = weight_cache(w, a, transpose=True)
    assert b is not a
    torch.testing.assert_close(b.weight_sq, w.square().sum(dim=[2, 3]))
    torch.testing.assert_close(b.weight_t, w.transpose(0, 1).contiguous())
    assert weight_cache(torch.randn(4, 6, 3, 3, requires_grad=True), None, transpose=False) is None
    with torch.inference_mode():
        assert weight_cache(torch.randn(4, 6, 3, 3), None, transpose=False) is None


def test_batched_synthesis_equals_single_heads():
    G = _random_generator()
    ws = G.mapping(torch.cat([G.z_from_seed(s) for s in (0, 1, 2)]))
    with torch.no_grad():
        batched = G.synthesize_planes(ws)
        singles = torch.cat([G.synthesize_planes(ws[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)


def test_inference_path_equals_autograd_path():
    # In-place bias/activation runs only when autograd does not track the tensors; training keeps the
    # out-of-place math, and both must agree (and gradients must flow).
    G = _random_generator()
    ws = G.mapping(G.z_from_seed(3))
    with torch.no_grad():
        fast = G.synthesize_planes(ws)
    G.requires_grad_(True)
    tracked = G.synthesize_planes(ws)
    tracked.square().mean().backward()
    assert G.backbone.synthesis.b64.conv1.weight.grad is not None
    torch.testing.assert_close(tracked.detach(), fast, atol=1e-6, rtol=1e-6)


def test_precision_options():
    G = _random_generator()
    ws = G.mapping(G.z_from_seed(4))
    with torch.no_grad():
        default = G.synthesis(ws)
        fp32 = G.synthesis(ws, precision="fp32")
        bf16 = G.synthesis(ws, precision="bf16")
    assert torch.equal(default.means, fp32.means)  # on the CPU, None and "fp32" are the same thing
    assert bf16.means.dtype == torch.float32  # outputs stay float32 whatever the blocks ran in
    err = (bf16.means - fp32.means).abs().max().item()
    assert 0 < err < 0.05
    with pytest.raises(ValueError, match="precision"):
        G.synthesis(ws, precision="fp8")


def test_fp16_without_conv_clamp_is_clamped_not_inf():
    # conv_clamp=None (released/demo configs) with weights that overflow fp16 (65504) without a clamp.
    G = _random_generator(conv_clamp=None)
    with torch.no_grad():
        for name, p in G.backbone.synthesis.named_parameters():
            if name.endswith(("conv0.bias", "conv1.bias")):  # layer biases, not the style affines
                p.fill_(3e4)  # x sqrt(2) -> 4.2e4 per activation: the next convolution's sum overflows fp16
    ws = G.mapping(G.z_from_seed(5))
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: outputs.append(out))
             for m in G.backbone.synthesis.modules() if type(m).__name__ in ("SynthesisLayer", "ToRGBLayer")]
    with torch.no_grad():
        g = G.synthesis(ws, num_fp16_res=2)
    for h in hooks:
        h.remove()
    fp16_outputs = [o for o in outputs if o.dtype == torch.float16]
    assert fp16_outputs, "fp16 blocks did not run"
    assert max(o.abs().max().item() for o in fp16_outputs) <= FP16_CONV_CLAMP
    assert all(torch.isfinite(t).all() for t in (g.means, g.sh, g.scales, g.quats, g.opacities))


def test_fp32_precision_context_is_a_no_op_on_cpu():
    flags = torch.backends.cudnn.conv.fp32_precision
    with fp32_precision(torch.device("cpu"), allow_tf32=False):
        assert torch.backends.cudnn.conv.fp32_precision == flags


def test_default_label_is_cached_per_device_and_fresh_per_call():
    G = _random_generator()
    a = G.default_label(2)
    b = G.default_label(2)
    assert a.shape == (2, 25) and torch.equal(a, b)
    a.zero_()  # callers may modify what they get: the cache must not change
    assert not torch.equal(G.default_label(1)[0], a[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal; this machine has CUDA")
def test_cuda_graph_option_refuses_cpu_generators():
    with pytest.raises(ValueError, match="CUDA graphs need the generator on a CUDA device"):
        _random_generator().graphed(1)


def test_fp32_precision_context_sets_ieee_for_cuda_and_restores():
    # Only flags are touched, so this runs without a GPU: a CUDA device object is enough.
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    with fp32_precision(torch.device("cuda"), allow_tf32=False):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
        with fp32_precision(torch.device("cuda"), allow_tf32=False):  # nested (synthesis -> planes)
            assert conv.fp32_precision == "ieee"
        assert conv.fp32_precision == "ieee"
    assert (conv.fp32_precision, matmul.fp32_precision) == before
    with pytest.raises(RuntimeError):
        with fp32_precision(torch.device("cuda"), allow_tf32=True):
            assert conv.fp32_precision == "tf32"
            raise RuntimeError("restored even on errors")
    assert (conv.fp32_precision, matmul.fp32_precision) == before
