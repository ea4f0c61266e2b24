"""Official-format snapshots (both layouts) and our .safetensors format load to identical generators."""

from __future__ import annotations

import pytest
import torch
from official_format import write_official_pickle

from gghead_core import CheckpointError, Generator, GeneratorConfig, convert_checkpoint, load_generator

SMALL = dict(z_dim=32, w_dim=32, channel_base=512, channel_max=16, plane_resolution=16,
             n_uniform_flame_vertices=12, neural_rendering_resolution=64)


def _randomize(G: Generator, seed: int = 0) -> Generator:
    """Non-trivial weights everywhere (zero-conv, noise strengths and w_avg are zero at construction)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in G.state_dict(keep_vars=True).items():
            if name.startswith("_uv") or name.startswith("_flame") or name.endswith("resample_filter"):
                continue
            tensor.copy_(torch.randn(tensor.shape, generator=gen) * (0.5 if tensor.dim() else 0.3))
    return G.eval().requires_grad_(False)


def _outputs(G: Generator, seed: int = 3):
    ws = G.mapping(G.z_from_seed(seed), truncation_psi=0.7)
    return ws, G.synthesis(ws)


def _assert_same(G1: Generator, G2: Generator) -> None:
    ws1, g1 = _outputs(G1)
    ws2, g2 = _outputs(G2)
    assert torch.equal(ws1, ws2)
    for a, b in zip((g1.means, g1.quats, g1.scales, g1.opacities, g1.sh), (g2.means, g2.quats, g2.scales, g2.opacities, g2.sh)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("layout", ["training", "released"])
@pytest.mark.parametrize("overrides", [{}, {"sh_degree": 3, "use_align_corners": True},
                                       {"use_rodriguez_rotation": False, "use_zero_conv_position": False,
                                        "conv_clamp": 2.0}])
def test_official_layouts_round_trip(tmp_path, layout, overrides):
    G = _randomize(Generator(GeneratorConfig(**SMALL, **overrides)))
    path = tmp_path / f"snapshot_{layout}.pkl"
    write_official_pickle(G, path, layout=layout)
    loaded = load_generator(path)
    assert loaded.config.sh_degree == G.config.sh_degree
    assert loaded.config.use_align_corners == G.config.use_align_corners
    assert loaded.config.conv_clamp == G.config.conv_clamp
    _assert_same(G, loaded)


@pytest.mark.parametrize("flag,value", [("use_background_cnn", True), ("disable_position_offsets", True)])
def test_unsupported_flags_are_refused_by_name(tmp_path, flag, value):
    G = _randomize(Generator(GeneratorConfig(**SMALL)))
    path = tmp_path / "unsupported.pkl"
    write_official_pickle(G, path, **{flag: value})
    with pytest.raises(CheckpointError, match=flag):
        load_generator(path)


def test_invalid_config_values_are_refused_by_name(tmp_path):
    G = _randomize(Generator(GeneratorConfig(**SMALL)))
    path = tmp_path / "bad_interp.pkl"
    write_official_pickle(G, path, interpolation_mode="lanczos")
    with pytest.raises(CheckpointError, match="interpolation_mode"):
        load_generator(path)


def test_missing_and_misshapen_tensors_are_reported(tmp_path):
    G = _randomize(Generator(GeneratorConfig(**SMALL)))
    path = tmp_path / "mismatch.pkl"
    # config says sh_degree 2 but the tensors were made for sh_degree 1: the ToRGB layers have the wrong shape
    write_official_pickle(G, path, gaussian_attribute_config=None)
    loaded = load_generator(path)  # a missing sub-config falls back to the defaults (sh_degree 1 here as well)
    assert loaded.config.sh_degree == 1
    from official_format import _cls

    bad_gauss = _cls("gghead.config.gaussian_attribute", "GaussianAttributeConfig")(
        use_rodriguez_rotation=True, sh_degree=2, n_color_channels=3)
    write_official_pickle(G, path, gaussian_attribute_config=bad_gauss)
    with pytest.raises(CheckpointError, match="torgb.weight has shape"):
        load_generator(path)


def test_safetensors_round_trip_of_the_fixture(tmp_path, fixture_ckpt):
    out = tmp_path / "fixture.safetensors"
    convert_checkpoint(fixture_ckpt, out)
    official, ours = load_generator(fixture_ckpt), load_generator(out)
    assert ours.config == official.config
    _assert_same(official, ours)
    assert len(ours.checkpoint_sha256) == 64 and ours.checkpoint_sha256 != official.checkpoint_sha256


def test_convert_never_overwrites_unasked_and_leaves_no_temp(tmp_path, fixture_ckpt):
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_checkpoint(fixture_ckpt, out)
    assert out.read_bytes() == b"precious"
    convert_checkpoint(fixture_ckpt, out, overwrite=True)
    assert load_generator(out).num_gaussians == 3596
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]


def test_convert_of_a_broken_input_writes_nothing(tmp_path):
    src = tmp_path / "broken.pkl"
    src.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError):
        convert_checkpoint(src, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_demo_path_is_used_when_no_path_given(monkeypatch, tmp_path):
    import gghead_core.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "DEMO_CHECKPOINT", tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="demo model is missing"):
        load_generator(None)


def test_cuda_device_without_cuda_is_a_clear_error(fixture_ckpt):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available on this machine; the error path cannot be exercised")
    with pytest.raises(CheckpointError, match="CUDA is not available"):
        load_generator(fixture_ckpt, device="cuda")
