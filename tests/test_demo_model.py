"""The bundled demo model (checkpoints/demo.safetensors) and the script that trains it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gghead_core import load_generator
from gghead_core.checkpoint import DEMO_CHECKPOINT
from gghead_core.config import SH_C0
from gghead_core.demo import heads as H
from gghead_core.demo import train_demo


@pytest.fixture(scope="module")
def G():
    return load_generator(None)


@pytest.fixture(scope="module")
def tpl(G) -> H.HeadTemplate:
    return H.build_head_template(G.plane_resolution, G.config.n_uniform_flame_vertices)


def _heads(G, seeds, psi=1.0):
    z = torch.cat([G.z_from_seed(s) for s in seeds])
    with torch.no_grad():
        return G.synthesis(G.mapping(z, truncation_psi=psi), noise_mode="const")


def _rgb(g) -> torch.Tensor:
    return 0.5 + SH_C0 * g.sh[:, :, 0]  # [B, N, 3] DC colour (view-independent part)


def test_demo_checkpoint_is_small_and_matches_the_demo_config(G) -> None:
    assert DEMO_CHECKPOINT.stat().st_size < 20 * 2**20
    assert G.num_gaussians <= 60_000
    assert G.sh_degree == 1
    assert G.config == train_demo.demo_config()

def test_demo_template_buffers_come_from_the_committed_obj(G) -> None:
    """The model's template buffers are what spec 3.4 gives for assets/head_template.obj."""
    from gghead_core.demo.template import TEMPLATE_OBJ
    from gghead_core.demo.uv_template import build_uv_template_from_obj

    uv_grid, position_map, points = build_uv_template_from_obj(
        TEMPLATE_OBJ, G.plane_resolution, G.config.n_uniform_flame_vertices
    )
    torch.testing.assert_close(G._uv_grid, uv_grid, atol=0, rtol=0)
    torch.testing.assert_close(G._uv_position_map, position_map, atol=1e-6, rtol=0)
    torch.testing.assert_close(G._flame_vertices, points, atol=1e-6, rtol=0)


def test_outputs_are_finite_and_in_range(G) -> None:
    g = _heads(G, [0, 1, 2])
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert torch.isfinite(getattr(g, name)).all(), name
    offset = g.means - G._flame_vertices
    assert offset.abs().max() < 0.25
    assert g.scales.max() < math.exp(-3) and g.scales.min() > 0
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones_like(g.opacities), atol=1e-5, rtol=0)
    assert g.opacities.min() > -0.0011 and g.opacities.max() < 1.0011
    assert (g.opacities > 0.8).float().mean() > 0.85  # an opaque head, not a cloud
    rgb = _rgb(g)
    assert rgb.min() > -0.01 and rgb.max() < 1.01


def test_model_reproduces_the_procedural_family(G, tpl) -> None:
    """Each seed's head matches its own procedural target better than any other seed's (not just a mean head)."""
    seeds = [0, 1, 2, 3, 4, 5]
    g = _heads(G, seeds)
    targets = H.head_attributes(H.params_from_z(torch.cat([G.z_from_seed(s) for s in seeds])), tpl)
    grid = G._uv_grid.repeat(len(seeds), 1, 1, 1)
    target_rgb = F.grid_sample(targets.rgb, grid, mode="bilinear", align_corners=False)[..., 0].permute(0, 2, 1)
    model_rgb = _rgb(g)
    err = (model_rgb[:, None] - target_rgb[None]).abs().mean(dim=(2, 3))  # [model i, target j]
    assert (err.diagonal() < 0.07).all(), err.diagonal()
    assert (err.argmin(dim=1) == torch.arange(len(seeds))).all(), err


def test_seeds_differ(G) -> None:
    rgb = _rgb(_heads(G, range(6)))
    for i in range(6):
        for j in range(i + 1, 6):
            assert (rgb[i] - rgb[j]).abs().mean() > 0.02, (i, j)


def test_psi_zero_gives_the_average_head(G, tpl) -> None:
    z = torch.cat([G.z_from_seed(s) for s in (3, 11)])
    ws = G.mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(ws, G.w_avg.expand_as(ws))
    g0 = _heads(G, [3, 11], psi=0.0)
    torch.testing.assert_close(g0.sh[0], g0.sh[1])
    # w_avg is the mean w of many latents, and its head is close to the mean of the heads.
    zs = torch.randn(512, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w_mean = G.mapping(zs)[:, 0].mean(dim=0)
        spread = (G.mapping(zs)[:, 0] - w_mean).norm(dim=1).mean()
    assert (G.w_avg - w_mean).norm() < 0.15 * spread
    many = _heads(G, range(24))
    mean_rgb = _rgb(many).mean(dim=0)
    avg_err = (_rgb(g0)[0] - mean_rgb).abs().mean()
    seed_err = (_rgb(many) - mean_rgb).abs().mean(dim=(1, 2))
    assert avg_err < seed_err.min()


def test_truncation_moves_toward_the_average(G) -> None:
    rgb = {psi: _rgb(_heads(G, [5], psi=psi))[0] for psi in (0.0, 0.5, 1.0)}
    d_half = (rgb[0.5] - rgb[0.0]).abs().mean()
    d_full = (rgb[1.0] - rgb[0.0]).abs().mean()
    assert 0.2 * d_full < d_half < 0.8 * d_full


def test_interpolation_is_smooth(G) -> None:
    z0, z1 = G.z_from_seed(0), G.z_from_seed(1)
    ts = torch.linspace(0, 1, 17)
    z = torch.cat([torch.lerp(z0, z1, float(t)) for t in ts])
    with torch.no_grad():
        g = G.synthesis(G.mapping(z), noise_mode="const")
    rgb, means = _rgb(g), g.means
    total = (rgb[-1] - rgb[0]).abs().mean()
    steps = (rgb[1:] - rgb[:-1]).abs().mean(dim=(1, 2))
    assert steps.max() < 0.25 * total  # no jump bigger than 4 of the 16 steps together
    assert (means[1:] - means[:-1]).abs().max() < 0.05
    # a tiny step in z makes a tiny change
    dz = 1e-3 * torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = G.synthesis(G.mapping(z0), noise_mode="const")
        b = G.synthesis(G.mapping(z0 + dz), noise_mode="const")
    assert (_rgb(a) - _rgb(b)).abs().max() < 0.02


def test_training_script_smoke(tmp_path: Path) -> None:
    """Two steps of the real training loop on a tiny config write a loadable checkpoint with a proper w_avg."""
    config = dataclasses.replace(train_demo.demo_config(), plane_resolution=32, n_uniform_flame_vertices=32,
                                 channel_base=256, channel_max=16)
    out = tmp_path / "tiny.safetensors"
    settings = train_demo.TrainSettings(steps=2, batch_size=2, w_avg_samples=256, threads=1)
    result = train_demo.train(settings, out, config=config, log=lambda msg: None)
    assert math.isfinite(result["total"])
    G = load_generator(out)
    assert G.config == config
    zs = torch.randn(256, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        spread = (G.mapping(zs)[:, 0] - G.w_avg).norm(dim=1).mean()
        assert (G.mapping(zs)[:, 0].mean(dim=0) - G.w_avg).norm() < 0.3 * spread
        g = G.synthesis(G.mapping(G.z_from_seed(0)))
    assert torch.isfinite(g.means).all()
    # refuses to overwrite unasked
    assert train_demo.main(["--out", str(out), "--steps", "1"]) == 2


def test_training_saves_along_the_way_and_warm_starts(tmp_path: Path) -> None:
    """--save-every leaves a loadable model before the run ends; --init copies an earlier model's network."""
    config = dataclasses.replace(train_demo.demo_config(), plane_resolution=32, n_uniform_flame_vertices=32,
                                 channel_base=256, channel_max=16)
    first = tmp_path / "first.safetensors"
    logs: list[str] = []
    settings = train_demo.TrainSettings(steps=3, batch_size=1, w_avg_samples=64, threads=1, save_every=1)
    train_demo.train(settings, first, config=config, log=logs.append)
    assert [m for m in logs if m.startswith("wrote") and "step" in m] == [
        f"wrote {first} (step 1/3)", f"wrote {first} (step 2/3)"]
    G1 = load_generator(first)
    # a warm start begins from the first model's weights: zero steps of training would reproduce it, one step
    # (lr tiny) stays close
    second = tmp_path / "second.safetensors"
    settings = train_demo.TrainSettings(steps=1, batch_size=1, w_avg_samples=64, threads=1, lr=1e-9, init=first)
    train_demo.train(settings, second, config=config, log=logs.append)
    G2 = load_generator(second)
    w1 = G1.backbone.synthesis.blocks()[-1].torgb.weight
    w2 = G2.backbone.synthesis.blocks()[-1].torgb.weight
    torch.testing.assert_close(w1, w2, atol=1e-6, rtol=0)
    # a checkpoint of another architecture is refused with one sentence
    other = dataclasses.replace(config, channel_max=8, channel_base=128)
    with pytest.raises(ValueError, match="another shape"):
        train_demo.train(dataclasses.replace(settings, init=first), None, config=other, log=logs.append)
    assert train_demo.main(["--out", str(tmp_path / "x.safetensors"), "--init", str(tmp_path / "absent")]) == 2
