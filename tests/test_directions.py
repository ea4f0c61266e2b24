"""Latent directions: the PCA of W is right (checked against numpy's SVD of the same samples), orthonormal,
ordered by variance and bit-identical when recomputed; the per-checkpoint cache round-trips PCA and custom
directions; edits travel through the CLI (``--edit``) and recipes and replay to identical pixels, even after
the cache was deleted; bad input is one line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core import cli
from gghead_core import directions as D
from gghead_core._cli_parser import parse_edit
from gghead_core.pipeline import LatentEdit, LatentSpec, make_ws

DEMO = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.safetensors"
N = 2000  # small: the statistics need not be good, only computed the same way


@pytest.fixture(scope="module")
def G():
    if not DEMO.is_file():
        pytest.skip("checkpoints/demo.safetensors is not present")
    from gghead_core import load_generator

    return load_generator(DEMO)


@pytest.fixture()
def cache(tmp_path, monkeypatch, G):
    """A private settings folder, and no directions remembered from another test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    D.forget(G)
    yield tmp_path / "config" / "gghead-viewer" / "directions"
    D.forget(G)


def _samples_w(G, n: int) -> np.ndarray:
    """W of the PCA's own latents, mapped independently of gghead_core.directions (one big batch)."""
    gen = torch.Generator("cpu").manual_seed(D.PCA_SEED)
    z = torch.cat([torch.randn(min(D.BATCH, n - i), G.z_dim, generator=gen) for i in range(0, n, D.BATCH)])
    with torch.no_grad():
        return G.mapping(z, None, truncation_psi=1.0)[:, 0].double().numpy()  # [n, w_dim]


def test_pca_is_orthonormal_ordered_and_matches_numpy_svd(G):
    ds = D.compute_directions(G, N)
    k = ds.num_components
    assert k == min(D.NUM_COMPONENTS, G.w_dim) and ds.names[:3] == ["pc0", "pc1", "pc2"]
    c = ds.components  # [K, w_dim]
    torch.testing.assert_close(c @ c.T, torch.eye(k, dtype=c.dtype), rtol=0, atol=1e-10)
    assert bool((ds.variances[:-1] >= ds.variances[1:]).all()) and float(ds.variances[-1]) > 0
    assert 0 < float(ds.explained.sum()) <= 1.0 + 1e-12
    torch.testing.assert_close(ds.stds, ds.variances.sqrt())

    w = _samples_w(G, N)
    centred = w - w.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var_np = s**2 / (N - 1)
    np.testing.assert_allclose(ds.variances.numpy(), var_np[:k], rtol=1e-6)
    np.testing.assert_allclose(ds.mean.numpy(), w.mean(0), atol=1e-9)
    gaps = np.diff(var_np[: k + 1]) / var_np[:k]  # compare vectors only where the eigenvalue is well separated
    for i in range(k):
        if abs(gaps[i]) > 1e-3 and (i == 0 or abs(gaps[i - 1]) > 1e-3):
            assert abs(float(np.dot(vt[i], c[i].numpy()))) > 1 - 1e-6, f"pc{i} differs from numpy's"
    # Projections on a component have its standard deviation.
    proj = centred @ c[0].numpy()
    assert abs(proj.std(ddof=1) - float(ds.stds[0])) < 1e-6 * float(ds.stds[0])


def test_recomputation_is_bit_identical_and_vectors_are_scaled(G):
    a, b = D.compute_directions(G, N), D.compute_directions(G, N)
    assert torch.equal(a.components, b.components) and torch.equal(a.covariance, b.covariance)
    v = a.vector("pc3")
    assert v.dtype == torch.float32 and v.shape == (G.w_dim,)
    torch.testing.assert_close(v.double().norm(), a.stds[3], rtol=1e-6, atol=0)
    with pytest.raises(KeyError):
        a.vector("pc99")
    assert "pc01" not in a.vectors(["pc01", "pc1"])  # names are exact: pc01 is not pc1


def test_edit_then_inverse_edit_with_real_directions(G):
    d = D.compute_directions(G, N).vectors()
    base = LatentSpec(seed=4, psi=0.6)
    ws = make_ws(G, base, directions=d)
    moved = make_ws(G, LatentSpec(seed=4, psi=0.6, edits=(LatentEdit("pc1", 2.5, 2, 8),)), directions=d)
    assert not torch.equal(moved, ws) and torch.equal(moved[:, :2], ws[:, :2]) and torch.equal(moved[:, 8:], ws[:, 8:])
    torch.testing.assert_close(moved[0, 2] - ws[0, 2], 2.5 * d["pc1"], rtol=0, atol=1e-5)
    back = make_ws(G, LatentSpec(seed=4, psi=0.6, edits=(LatentEdit("pc1", 2.5, 2, 8), LatentEdit("pc1", -2.5, 2, 8))),
                   directions=d)
    torch.testing.assert_close(back, ws, rtol=0, atol=1e-6)


def test_edits_combine_with_interpolation_truncation_and_mixing(G):
    from gghead_core.pipeline import StyleMix, apply_edits

    d = D.compute_directions(G, N).vectors()
    edits = (LatentEdit("pc0", 1.5), LatentEdit("pc4", -2.0, 3, 9))
    for base in (LatentSpec(seed=2, seed_b=7, t=0.3, psi=0.5, cutoff=6, mix=StyleMix(11, 4, 8)),
                 LatentSpec(seed=2, seed_b=7, t=0.6, space="z", psi=0.8)):
        plain = make_ws(G, base, directions=d)
        edited = make_ws(G, replace(base, edits=edits), directions=d)
        assert torch.equal(edited, apply_edits(plain, edits, d))


def test_cache_round_trip_and_custom_directions(G, cache):
    ds = D.load_or_compute(G, samples=N)
    path = cache / f"{G.checkpoint_sha256}.safetensors"
    assert path.is_file() and not list(cache.glob(".directions-*"))  # written atomically, no temp left
    ds2 = D.add_custom_direction(G, "smile", [1, 5, 9], [2, 3])
    with pytest.raises(D.DirectionsError, match="already exists"):
        D.add_custom_direction(G, "smile", [1], [2])
    D.forget(G)
    back = D.cached_directions(G)
    assert back is not None and back.samples == N and back.names == ds.names + ["smile"]
    assert torch.equal(back.components, ds.components) and torch.equal(back.covariance, ds.covariance)
    c = back.custom_named("smile")
    assert c.with_seeds == (1, 5, 9) and c.without_seeds == (2, 3)
    assert torch.equal(c.unit, ds2.custom_named("smile").unit) and c.std == ds2.custom_named("smile").std
    # The direction is the normalised mean difference of W, scaled by the spread of W along it.
    w = lambda seeds: torch.stack([G.mapping(G.z_from_seed(s), None)[0, 0].double() for s in seeds]).mean(0)  # noqa: E731
    diff = w([1, 5, 9]) - w([2, 3])
    torch.testing.assert_close(c.unit, diff / diff.norm(), rtol=0, atol=1e-6)
    proj = (torch.from_numpy(_samples_w(G, N)) - back.mean) @ c.unit
    assert abs(float(proj.std()) - c.std) < 1e-6 * c.std
    torch.testing.assert_close(D.directions_for(G, ["smile"])["smile"].double(), c.unit * c.std, rtol=0, atol=1e-6)
    # Recomputing keeps custom directions (recomputed from their seeds) and gives the same numbers.
    again = D.load_or_compute(G, samples=N, recompute=True)
    assert again.names == back.names and torch.equal(again.custom_named("smile").unit, c.unit)
    D.remove_custom_direction(G, "smile")
    D.forget(G)
    assert D.cached_directions(G).names == ds.names


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("pc3", [1], [2]), "reserved"),
        (("a b", [1], [2]), "must be"),
        (("x", [], [2]), "at least one seed"),
        (("x", [1, 2], [2, 1]), "same set"),
        (("x", [1], [2**33]), "outside"),
    ],
)
def test_bad_custom_directions_are_one_line(G, cache, args, fragment):
    D.load_or_compute(G, samples=N)
    with pytest.raises(D.DirectionsError, match=fragment) as info:
        D.add_custom_direction(G, *args)
    assert "\n" not in str(info.value)


def test_corrupt_or_foreign_cache_is_one_line(G, cache):
    D.load_or_compute(G, samples=N)
    path = cache / f"{G.checkpoint_sha256}.safetensors"
    path.write_bytes(b"junk")
    D.forget(G)
    with pytest.raises(D.DirectionsError, match="unreadable.*--recompute"):
        D.directions_for(G, ["pc0"])
    assert D.load_or_compute(G, samples=N, recompute=True).samples == N  # --recompute repairs it
    ds = D.compute_directions(G, N)
    other = D.DirectionSet(**{**{f: getattr(ds, f) for f in ds.__dataclass_fields__},
                              "mean": torch.zeros(7, dtype=torch.float64)})
    D.save_directions(other, path)
    D.forget(G)
    with pytest.raises(D.DirectionsError, match="w_dim 7"):
        D.cached_directions(G)


def test_unwritable_settings_folder_costs_the_cache_not_the_directions(G, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the settings folder would be")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    D.forget(G)
    try:
        ds = D.load_or_compute(G, samples=N)
        assert ds.cache_note.startswith("cannot write directions cache") and ds.num_components == 20
        assert D.cached_directions(G) is ds  # kept in memory for this process
        assert cli.main(["--ckpt", str(DEMO), "-q", "directions"]) == 0
        assert "not cached (cannot write directions cache" in capsys.readouterr().out
    finally:
        D.forget(G)


def test_in_memory_model_is_not_cached(cache):
    from gghead_core import Generator, GeneratorConfig

    g = Generator(GeneratorConfig(z_dim=16, w_dim=16, mapping_num_layers=2, plane_resolution=16,
                                  n_uniform_flame_vertices=8))
    assert g.checkpoint_sha256 == ""
    vecs = D.directions_for(g, ["pc0", "pc1"])
    assert set(vecs) == {"pc0", "pc1"} and not cache.exists()
    assert D.cached_directions(g) is not None  # remembered in memory for this process


def test_cancel_and_progress(G):
    import threading

    seen = []
    D.w_statistics(G, 2500, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 2500) and seen[-1] == (2500, 2500) and len(seen) == 4
    ev = threading.Event()
    ev.set()
    with pytest.raises(D.DirectionsCancelled):
        D.w_statistics(G, 2500, cancel=ev)
    with pytest.raises(D.DirectionsError, match="samples"):
        D.w_statistics(G, 5)


@pytest.mark.parametrize(
    "text, edit",
    [
        ("pc2=+2.5", LatentEdit("pc2", 2.5)),
        ("pc5=-1@0-6", LatentEdit("pc5", -1.0, 0, 7)),
        ("smile=0.5@4-", LatentEdit("smile", 0.5, 4, None)),
        ("pc0=1@3", LatentEdit("pc0", 1.0, 3, 4)),
    ],
)
def test_edit_syntax(text, edit):
    assert parse_edit(text) == edit


@pytest.mark.parametrize("text", ["pc2", "=1", "pc2=", "pc2=abc", "pc2=1@6-2", "pc2=1@a-b", "pc2=nan", "pc2=1e9"])
def test_bad_edit_is_one_usage_line(text, capsys, tmp_path):
    code = cli.main(["render", "--seed", "1", "--edit", text, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--edit" in err, err


def test_edited_render_replays_identically_even_after_the_cache_is_deleted(G, cache, tmp_path, capsys):
    out = tmp_path / "edited.png"
    argv = ["--ckpt", str(DEMO), "-q", "render", "--seed", "3", "--resolution", "64", "--backend", "torch",
            "--edit", "pc2=+2.5", "--edit", "pc5=-1@0-6"]
    assert cli.main(argv + ["--out", str(out)]) == 0
    plain = tmp_path / "plain.png"
    assert cli.main(argv[:8] + ["--out", str(plain)]) == 0
    assert not np.array_equal(_png(out), _png(plain))  # the edit changed the head
    assert cli.main(["-q", "replay", str(out) + ".json", "--out", str(tmp_path / "r1.png")]) == 0
    assert np.array_equal(_png(out), _png(tmp_path / "r1.png"))
    for f in cache.glob("*.safetensors"):  # another machine (or a cleared cache): recomputed from scratch
        f.unlink()
    D.forget(G)
    assert cli.main(["-q", "replay", str(out) + ".json", "--out", str(tmp_path / "r2.png")]) == 0
    assert np.array_equal(_png(out), _png(tmp_path / "r2.png"))
    code = cli.main(argv[:8] + ["--edit", "nothere=1", "--out", str(tmp_path / "u.png")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown latent direction(s) nothere" in err


def test_directions_command_table_and_custom(cache, capsys, tmp_path):
    assert cli.main(["--ckpt", str(DEMO), "-q", "directions", "--samples", str(N)]) == 0
    out = capsys.readouterr().out
    assert f"from {N:,} latents" in out and "pc0 " in out and "pc19 " in out and "explained" in out
    assert cli.main(["--ckpt", str(DEMO), "-q", "directions", "--add", "older", "--with", "1,5,9",
                     "--without", "2,3"]) == 0
    assert "older" in capsys.readouterr().out
    code = cli.main(["--ckpt", str(DEMO), "directions", "--add", "pc4", "--with", "1", "--without", "2"])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1
    code = cli.main(["--ckpt", str(DEMO), "directions", "--with", "1"])
    assert code == 2 and "--add" in capsys.readouterr().err
    out_png = tmp_path / "older.png"
    assert cli.main(["--ckpt", str(DEMO), "-q", "render", "--seed", "2", "--resolution", "64", "--backend", "torch",
                     "--edit", "older=2@0-5", "--out", str(out_png)]) == 0


def _png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))
