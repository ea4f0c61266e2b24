"""inspect_view (highlight / show only / centres / opacity floor) and pick_gaussian, on the torch reference
renderer (deterministic, so "unchanged" can mean bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gghead_core import load_generator
from gghead_core.camera import CameraSpec, frontal_camera
from gghead_core.gaussians import Gaussians
from gghead_core.inspection import (
    InspectSpec,
    inspect_view,
    inspect_view_indexed,
    pick_gaussian,
    selection_indices,
)
from gghead_core.pipeline import LatentSpec, generate
from gghead_core.render import render
from gghead_core.uv_maps import texel_mapping
from gghead_core.vocabulary import SpecError

RES = 128


@pytest.fixture(scope="module")
def head():
    G = load_generator(None)
    return G, generate(G, LatentSpec(seed=2)), texel_mapping(G)


def _render(g: Gaussians, camera=None) -> np.ndarray:
    res = render(g, camera or frontal_camera(), RES, backend="torch")
    return torch.cat([res.image[0], res.alpha[0][..., None]], dim=-1).numpy()


def _nose_box(g: Gaussians, mapping, half: int = 3) -> tuple[int, int, int, int]:
    """A UV box around the texel of the Gaussian nearest the camera (visible from the front)."""
    front = int(torch.argmax(g.means[0, :, 2]))
    r, c = mapping.texel_of(front)
    return (r - half, c - half, r + half + 1, c + half + 1)


def test_highlight_changes_exactly_the_selected_gaussians_pixels(head):
    G, g, mapping = head
    spec = InspectSpec(box=_nose_box(g, mapping))
    sel = selection_indices(spec, mapping)
    assert 20 < sel.size < g.num_gaussians // 10
    base = _render(g)
    lit = _render(inspect_view(g, sel, spec))
    changed = np.any(base != lit, axis=-1)
    # where the selection reaches at all: its own render's alpha
    footprint = _render(inspect_view(g, sel, InspectSpec(box=spec.box, show_only=True, highlight=False)))[..., 3] > 0
    assert changed.sum() > 20
    assert not np.any(changed & ~footprint), "a pixel outside the selection's footprint changed"
    np.testing.assert_array_equal(base[~footprint], lit[~footprint])
    # alpha never changes (tinting is colour only), and the tint pulls toward magenta (R and B up vs G)
    np.testing.assert_array_equal(base[..., 3], lit[..., 3])
    d = lit[changed, :3] - base[changed, :3]
    assert np.mean(d[:, 0] - d[:, 1]) > 0 and np.mean(d[:, 2] - d[:, 1]) > 0
    # the pixel under the front-most selected Gaussian changes
    cam = frontal_camera()
    front = int(torch.argmax(g.means[0, :, 2]))
    x, y = _project(cam, g.means[0, front])
    assert changed[int(round(y)), int(round(x))]


def _project(cam, p: torch.Tensor) -> tuple[float, float]:
    pc = cam.world2cam() @ np.append(p.double().numpy(), 1.0)
    K = cam.intrinsics_pixels(RES)
    return (K[0, 0] * pc[0] / pc[2] + K[0, 2] - 0.5, K[1, 1] * pc[1] / pc[2] + K[1, 2] - 0.5)


def test_show_only_opacity_floor_and_centres(head):
    G, g, mapping = head
    spec = InspectSpec(box=_nose_box(g, mapping), show_only=True, highlight=False)
    sel = selection_indices(spec, mapping)
    view, idx = inspect_view_indexed(g, sel, spec)
    assert idx.tolist() == sel.tolist()
    assert torch.equal(view.means[0], g.means[0, sel])
    assert torch.equal(view.sh[0], g.sh[0, sel])

    floor = InspectSpec(opacity_threshold=0.5)
    view, idx = inspect_view_indexed(g, None, floor)
    assert torch.equal(idx, torch.nonzero(g.opacities[0] >= 0.5).squeeze(1))
    assert bool((view.opacities >= 0.5).all())

    dots = InspectSpec(centres=True, centre_size=0.004)
    view = inspect_view(g, None, dots)
    assert torch.equal(view.means, g.means)
    assert bool((view.scales == 0.004).all()) and bool((view.opacities == 1).all())
    assert torch.equal(view.quats[0, :, 0], torch.ones(g.num_gaussians))
    # nothing to do: the very same values
    same = inspect_view(g, None, InspectSpec())
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert torch.equal(getattr(same, name), getattr(g, name))
    assert not InspectSpec().changes_view and InspectSpec(centres=True).changes_view
    # show only an empty selection: nothing left (every backend draws an empty set as background)
    assert inspect_view(g, [], InspectSpec(show_only=True)).num_gaussians == 0


def test_tint_formula_matches_for_every_view_direction(head):
    """The tinted Gaussians' evaluated colour is (1 - s) * colour + s * tint from any direction."""
    from gghead_core.render._sh import sh_to_colors

    G, g, mapping = head
    sel = np.arange(0, g.num_gaussians, 97)
    spec = InspectSpec(tint=(0.2, 0.9, 0.1), tint_strength=0.6, box=(0, 0, 1, 1))
    view = inspect_view(g, sel, spec)
    for centre in ((0.0, 0.0, 2.7), (2.0, 1.0, -1.0)):
        c_in = sh_to_colors(g.means[0], g.sh[0], torch.tensor(centre))
        c_out = sh_to_colors(view.means[0], view.sh[0], torch.tensor(centre))
        # sh_to_colors clamps below at 0; compare where the original colour is positive
        want = 0.4 * c_in[sel] + 0.6 * torch.tensor([0.2, 0.9, 0.1])
        ok = (c_in[sel] > 0).all(dim=1) & (want > 0).all(dim=1)
        torch.testing.assert_close(c_out[sel][ok], want[ok], atol=1e-5, rtol=0)
        others = np.setdiff1d(np.arange(g.num_gaussians), sel)
        assert torch.equal(c_out[others], c_in[others])


def _blob(centres, opacities, scale=0.02) -> Gaussians:
    n = len(centres)
    quats = torch.zeros(1, n, 4)
    quats[..., 0] = 1
    sh = torch.zeros(1, n, 4, 3)
    return Gaussians(means=torch.tensor(centres, dtype=torch.float32)[None], quats=quats,
                     scales=torch.full((1, n, 3), scale), opacities=torch.tensor(opacities, dtype=torch.float32)[None],
                     sh=sh)


def test_pick_front_most_covering_gaussian():
    cam = frontal_camera()
    g = _blob([[0.0, 0.0, 0.0], [0.0, 0.0, 0.1], [0.15, 0.0, 0.0]], [0.9, 0.9, 0.9])
    cx, cy = _project(cam, g.means[0, 0])
    assert pick_gaussian(g, cam, RES, cx, cy) == 1  # the one nearer the camera (+z)
    sx, sy = _project(cam, g.means[0, 2])
    assert pick_gaussian(g, cam, RES, sx, sy) == 2
    assert pick_gaussian(g, cam, RES, 2.0, 2.0) is None
    # a faint front Gaussian is skipped
    g2 = _blob([[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]], [0.9, 0.02])
    assert pick_gaussian(g2, cam, RES, cx, cy) == 0
    # just outside the front one's footprint (3 sigma in pixels) but inside the back one's larger one
    g3 = _blob([[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]], [0.9, 0.9], scale=0.01)
    g3.scales[0, 0] = 0.05
    fx = cam.intrinsics_pixels(RES)[0, 0]
    off = 4.0 * 0.01 * fx / 2.6 + 1.0
    assert pick_gaussian(g3, cam, RES, cx + off, cy) == 0
    # a CameraSpec works too
    assert pick_gaussian(g, CameraSpec(), RES, cx, cy) == 1


def test_pick_on_a_head_is_what_the_render_shows(head):
    """Clicking the projected centre of visible Gaussians returns one that covers the point and is not behind
    the clicked one; tinting the picked Gaussian changes that very pixel."""
    G, g, mapping = head
    cam = CameraSpec(yaw_deg=25.0, pitch_deg=10.0)
    camera = cam.to_camera()
    base = _render(g, camera)
    pc = (g.means[0].double() @ torch.as_tensor(camera.world2cam()[:3, :3]).T
          + torch.as_tensor(camera.world2cam()[:3, 3]))
    rng = np.random.default_rng(3)
    cands = np.nonzero(g.opacities[0].numpy() > 0.5)[0]
    changed_any = 0
    for i in rng.choice(cands, size=8, replace=False):
        x, y = _project(camera, g.means[0, i])
        if not (1 <= x < RES - 1 and 1 <= y < RES - 1):
            continue
        j = pick_gaussian(g, cam, RES, x, y)
        assert j is not None
        assert pc[j, 2] <= pc[i, 2] + 1e-9
        lit = _render(inspect_view(g, None, InspectSpec(picked=j)), camera)
        changed_any += bool(np.any(lit[int(round(y)), int(round(x))] != base[int(round(y)), int(round(x))]))
    assert changed_any >= 6


def test_inspect_spec_validation():
    with pytest.raises(SpecError, match="UV box"):
        InspectSpec(box=(3, 3, 3, 5))
    with pytest.raises(SpecError):
        InspectSpec(box=(1, 2, 3))
    with pytest.raises(SpecError, match="opacity threshold"):
        InspectSpec(opacity_threshold=1.5)
    with pytest.raises(SpecError, match="tint"):
        InspectSpec(tint=(2.0, 0.0, 0.0))
    with pytest.raises(SpecError):
        InspectSpec(show_only="yes")  # type: ignore[arg-type]
    assert InspectSpec(box=(1, 2, 3, 4), picked=5).cleared() == InspectSpec()
    g = _blob([[0.0, 0.0, 0.0]], [0.5])
    with pytest.raises(ValueError, match="selection indices"):
        inspect_view(g, [3], InspectSpec(box=(0, 0, 1, 1)))


def _wait(worker, request_id, timeout=120.0):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        res = worker.poll()
        if res is not None and res.request_id >= request_id:
            return res
        if res is not None:
            worker.pool.release(res.buffer)
        time.sleep(0.01)
    raise AssertionError("worker did not answer")


def test_the_viewers_worker_applies_the_debug_view_on_every_backend(head):
    """RenderArgs.inspect is applied before rendering: the worker's frame equals rendering
    inspect_view(...) directly, on each backend available here."""
    from dataclasses import replace

    from app.state import RenderArgs
    from app.worker import RenderWorker
    from gghead_core.render import available_backends

    G, g, mapping = head
    latent = LatentSpec(seed=2)
    spec = InspectSpec(box=_nose_box(g, mapping, half=6), centres=False, opacity_threshold=0.3)
    w = RenderWorker(device="cpu", loader=lambda path, device: G)
    try:
        w.load_model("demo")
        import time

        deadline = time.time() + 30
        while (ev := w.poll_model_event()) is None and time.time() < deadline:
            time.sleep(0.01)
        assert ev is not None and ev.ok
        for backend in available_backends():
            args = RenderArgs(latent=latent)
            args.settings = replace(args.settings, resolution=64, backend=backend)
            plain = _wait(w, w.submit(args)).buffer[..., :3].copy()
            args.inspect = spec
            shown = _wait(w, w.submit(args)).buffer[..., :3].copy()
            direct = render(inspect_view(g, selection_indices(spec, mapping), spec), frontal_camera(), 64,
                            backend=backend, background=args.settings.background).image[0].numpy()
            np.testing.assert_array_equal(shown, direct, err_msg=backend)
            assert np.abs(shown - plain).max() > 0.1, backend
    finally:
        w.close()


def test_pick_footprint_matches_an_independent_projection():
    """A stretched, rotated Gaussian near the edge of a wide (80 degree) view: the pick's footprint test agrees
    with alpha computed from a finite-difference Jacobian of the pinhole projection (no shared code)."""
    import math

    cam = CameraSpec(yaw_deg=20.0, pitch_deg=-10.0, fov_deg=80.0).to_camera()
    res = 96
    half = math.sqrt(0.5)
    g = Gaussians(means=torch.tensor([[[0.9, 0.55, 0.3]]]), quats=torch.tensor([[[half, 0.0, 0.0, half]]]),
                  scales=torch.tensor([[[0.08, 0.01, 0.02]]]), opacities=torch.tensor([[0.9]]),
                  sh=torch.zeros(1, 1, 4, 3))
    w2c = cam.world2cam()
    K = cam.intrinsics_pixels(res)

    def proj(p):
        pc = w2c[:3, :3] @ p + w2c[:3, 3]
        return np.array([K[0, 0] * pc[0] / pc[2] + K[0, 2] - 0.5, K[1, 1] * pc[1] / pc[2] + K[1, 2] - 0.5])

    mean = g.means[0, 0].double().numpy()
    eps = 1e-6
    jac = np.stack([(proj(mean + eps * e) - proj(mean - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # w=x=0: 90 degrees about z
    cov3 = rot @ np.diag([0.08, 0.01, 0.02]) ** 2 @ rot.T
    cov2 = jac @ cov3 @ jac.T + 0.3 * np.eye(2)
    centre = proj(mean)
    assert 0 <= centre[0] < res and 0 <= centre[1] < res
    inv = np.linalg.inv(cov2)
    _, evecs = np.linalg.eigh(cov2)
    axis = evecs[:, 1]  # the long axis on screen
    hits = 0
    for alpha_want in (0.2, 0.08, 0.03, 0.01):
        m2 = 2 * math.log(0.9 / alpha_want)  # Mahalanobis^2 where alpha = alpha_want
        d = axis * math.sqrt(m2 / (axis @ inv @ axis))
        x, y = centre + d
        expected = 0 if alpha_want >= 0.05 else None
        assert pick_gaussian(g, cam, res, float(x), float(y)) == expected, alpha_want
        hits += expected == 0
    assert hits == 2
    with pytest.raises(ValueError, match="min_alpha"):
        pick_gaussian(g, cam, res, 1.0, 1.0, min_alpha=0.0)
