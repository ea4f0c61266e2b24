"""Generator behaviour on configurations the official fixture does not cover, checked against first principles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gghead_core import ConfigError, Generator, GeneratorConfig
from gghead_core.config import SH_C0
from gghead_core.stylegan2 import SynthesisLayer, ToRGBLayer

SMALL = dict(z_dim=32, w_dim=32, channel_base=512, channel_max=16, plane_resolution=16,
             n_uniform_flame_vertices=10)


def _random_generator(seed: int = 0, **overrides) -> Generator:
    G = Generator(GeneratorConfig(**{**SMALL, **overrides}))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.state_dict(keep_vars=True).items():
            if not (name.startswith("_uv") or name.startswith("_flame") or name.endswith("resample_filter")):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5)
    return G.eval().requires_grad_(False)


def _gaussians(G: Generator, seed: int = 1, **kw):
    return G.synthesis(G.mapping(G.z_from_seed(seed)), **kw)


def test_released_size_generator_shapes_and_finiteness():
    # Released FFHQ config (defaults) with a placeholder template of 485^2 = 235,225 Gaussians (~ the 235,232 of
    # the FLAME template at n=512). Random weights: only shapes, ranges and finiteness are checked.
    G = Generator(GeneratorConfig(n_uniform_flame_vertices=485)).eval().requires_grad_(False)
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws, G.config.n_uv_channels) == (512, 512, 25, 14, 22)
    with torch.inference_mode():
        ws = G.mapping(G.z_from_seed(0), truncation_psi=0.7)
        planes = G.synthesize_planes(ws)
        g = G.activate(G.decode_attributes(G.sample_uv(planes)))
    assert planes.shape == (1, 22, 256, 256)
    assert g.means.shape == (1, 235225, 3) and g.sh.shape == (1, 235225, 4, 3)
    for t in (g.means, g.quats, g.scales, g.opacities, g.sh):
        assert torch.isfinite(t).all()
    assert (g.scales < math.exp(-3)).all() and (g.scales > 0).all()
    assert (g.opacities > -0.001).all() and (g.opacities < 1.001).all()
    assert ((g.means - G._flame_vertices).abs() < 0.25 + 1e-6).all()
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert (g.sh.abs() <= 1.003 * 0.5 / SH_C0 + 1e-5).all()  # tanh*(1+2o)-o lies in (-1.003, 1.001)


@pytest.mark.parametrize("sh_degree", [0, 2, 3])
def test_other_sh_degrees(sh_degree):
    G = _random_generator(sh_degree=sh_degree)
    assert G.config.n_uv_channels == 3 + 3 + 3 + 3 * (sh_degree + 1) ** 2 + 1
    g = _gaussians(G)
    assert g.sh.shape == (1, G.num_gaussians, (sh_degree + 1) ** 2, 3) and g.sh_degree == sh_degree
    # colour channels are SH-coefficient-major, RGB-minor: coefficient k, channel c = raw channel 3k + c
    raw = G.sample_uv(G.synthesize_planes(G.mapping(G.z_from_seed(1))))
    color_raw = G.split_raw(raw)["COLOR"]
    expected = (torch.tanh(color_raw) * 1.002 - 0.001) * (0.5 / SH_C0)
    assert torch.allclose(g.sh.reshape(1, G.num_gaussians, -1), expected, atol=1e-6)


def test_align_corners_samples_texel_centres_exactly():
    G = _random_generator(use_align_corners=True, plane_resolution=8, n_uniform_flame_vertices=8)
    # with align_corners=True, grid lin(-1, 1, R) hits texel centres exactly: sampling == reading the plane
    planes = G.synthesize_planes(G.mapping(G.z_from_seed(2)))
    raw = G.sample_uv(planes)  # [1, 64, C]
    uv_map = G.position_adjusted_planes(planes)  # [1, C, 8, 8]
    assert torch.allclose(raw[0], uv_map[0].reshape(uv_map.shape[1], -1).T, atol=1e-6)
    G_off = _random_generator(use_align_corners=False, plane_resolution=8, n_uniform_flame_vertices=8)
    G_off.load_state_dict(G.state_dict())
    assert not torch.allclose(G_off.sample_uv(planes), raw, atol=1e-4)


def test_plane_template_offsets_are_bounded_around_the_plane():
    t = torch.linspace(-1, 1, 9)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    grid = torch.stack([xx, yy], -1).reshape(1, -1, 1, 2)
    points = torch.stack([xx * 0.3, -yy * 0.3, torch.zeros_like(xx)], -1).reshape(1, -1, 3)
    position_map = torch.zeros(3, 16, 16)
    G = Generator(GeneratorConfig(**{**SMALL, "template": "plane"}), grid, position_map, points)
    g = _gaussians(G)
    assert g.num_gaussians == 81
    assert (g.means[0, :, 2].abs() < 0.25).all()
    assert ((g.means - points).abs() < 0.25).all()


def test_four_channel_quaternions_are_normalised_raw_values():
    G = _random_generator(use_rodriguez_rotation=False)
    assert G.config.n_uv_channels == 3 + 3 + 4 + 12 + 1
    raw = G.sample_uv(G.synthesize_planes(G.mapping(G.z_from_seed(1))))
    q_raw = G.split_raw(raw)["ROTATION"]
    g = G.activate(G.decode_attributes(raw))
    assert torch.allclose(g.quats, q_raw / q_raw.norm(dim=-1, keepdim=True), atol=1e-6)


def test_rodrigues_rotation_channel_quirk():
    G = _random_generator()
    raw = G.sample_uv(G.synthesize_planes(G.mapping(G.z_from_seed(4))))
    a = torch.tanh(G.split_raw(raw)["ROTATION"]) * 2 * math.pi
    theta = a.norm(dim=-1, keepdim=True)
    k = torch.sin(theta / 2) / theta
    expected = torch.cat([a[..., 2:3] * k, torch.cos(theta / 2), a[..., 0:1] * k, a[..., 1:2] * k], dim=-1)
    assert torch.allclose(G.decode_attributes(raw).rotation, expected, atol=1e-5)


def test_without_zero_conv_positions_sample_the_planes_directly():
    G = _random_generator(use_zero_conv_position=False)
    assert not hasattr(G, "_zero_conv_position")
    planes = G.synthesize_planes(G.mapping(G.z_from_seed(1)))
    direct = F.grid_sample(planes, G._uv_grid, mode="bilinear", align_corners=False)[0, :, :, 0].T
    assert torch.allclose(G.sample_uv(planes)[0], direct, atol=1e-6)
    g = G.activate(G.decode_attributes(G.sample_uv(planes)))
    assert torch.allclose(g.means[0], G._flame_vertices[0] + 0.25 * torch.tanh(direct[:, 0:3]), atol=1e-6)


def test_conv_clamp_bounds_every_layer_output():
    G = _random_generator(conv_clamp=0.25)
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: outputs.append(out)) for m in G.modules()
             if isinstance(m, (SynthesisLayer, ToRGBLayer))]
    _gaussians(G)
    for h in hooks:
        h.remove()
    assert len(outputs) == 2 * len(G.config.block_resolutions) - 1 + len(G.config.block_resolutions)
    assert max(o.abs().max().item() for o in outputs) <= 0.25 + 1e-7
    unclamped = _random_generator(conv_clamp=None)
    assert not torch.equal(_gaussians(unclamped).means, _gaussians(G).means)


def test_fp16_blocks_stay_close_to_fp32():
    # The official code runs fp16 blocks on CUDA only; we can request them anywhere to test the math.
    G = _random_generator(conv_clamp=256)
    ws = G.mapping(G.z_from_seed(5))
    p32 = G.synthesize_planes(ws)
    p16 = G.synthesize_planes(ws, num_fp16_res=3)
    assert p16.dtype == torch.float32
    assert not torch.equal(p16, p32)
    assert (p16 - p32).abs().max() < 0.05 * p32.abs().max()


def test_noise_modes():
    G = _random_generator()
    ws = G.mapping(G.z_from_seed(1))
    const_a, const_b = G.synthesize_planes(ws, "const"), G.synthesize_planes(ws, "const")
    assert torch.equal(const_a, const_b)
    torch.manual_seed(0)
    rnd_a = G.synthesize_planes(ws, "random")
    rnd_b = G.synthesize_planes(ws, "random")
    assert not torch.equal(rnd_a, rnd_b)
    assert not torch.equal(G.synthesize_planes(ws, "none"), const_a)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesize_planes(ws, "loud")


def test_truncation_psi_and_cutoff():
    G = _random_generator()
    z = G.z_from_seed(7)
    ws1 = G.mapping(z)
    ws0 = G.mapping(z, truncation_psi=0.0)
    assert torch.allclose(ws0, G.w_avg.expand_as(ws0), atol=1e-6)
    cut = G.mapping(z, truncation_psi=0.0, truncation_cutoff=3)
    assert torch.allclose(cut[:, :3], ws0[:, :3]) and torch.equal(cut[:, 3:], ws1[:, 3:])
    half = G.mapping(z, truncation_psi=0.5)
    assert torch.allclose(half, G.w_avg + 0.5 * (ws1 - G.w_avg), atol=1e-5)
    with pytest.raises(ValueError, match="truncation_cutoff"):
        G.mapping(z, truncation_cutoff=G.num_ws + 1)


def test_camera_conditioning_and_zeroing():
    G = _random_generator()
    z = G.z_from_seed(3)
    default = G.mapping(z)
    assert torch.equal(default, G.mapping(z, c=G.default_label()))
    other = G.default_label().clone()
    other[0, 11] = 3.5
    assert not torch.equal(default, G.mapping(z, c=other))
    G.config.c_gen_conditioning_zero = True
    assert torch.equal(G.mapping(z, c=other), G.mapping(z, c=torch.zeros_like(other)))
    with pytest.raises(ValueError, match="camera label"):
        G.mapping(z, c=torch.zeros(1, 7))


def test_seed_convention_matches_torch_cpu_generator():
    G = _random_generator()
    expected = torch.randn(1, 32, generator=torch.Generator("cpu").manual_seed(11))
    assert torch.equal(G.z_from_seed(11), expected)


@pytest.mark.parametrize("bad", [dict(plane_resolution=12), dict(sh_degree=4), dict(architecture="resnet"),
                                 dict(uv_attributes=("POSITION", "SCALE")), dict(n_color_channels=4)])
def test_invalid_configs_are_refused_with_the_flag_name(bad):
    flag = next(iter(bad))
    with pytest.raises(ConfigError, match=flag.split("_")[0]):
        GeneratorConfig(**{**SMALL, **bad})
