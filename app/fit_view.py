"""Fit view: frame the current head by moving the camera to the bounds of its Gaussians.

Split out of :mod:`app.viewer` (issue 9): it is the one viewer action that reads the generated Gaussians
themselves (a torch computation on the UI thread), not UI state; :meth:`app.viewer.Viewer.fit_view` delegates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from app.viewer import Viewer

QUANTILE_MAX_POINTS = 16_000_000  # torch.quantile refuses larger inputs: plain min / max beyond this


def fit_view(viewer: Viewer) -> str | None:
    """Frame the current head: look at the centre of its Gaussians' bounds, back off until they fit.

    The bounds ignore the 1% most extreme means on each axis (a few stray Gaussians must not shrink the
    head to a dot). Returns an error line, or None when the camera was moved.
    """
    gen = viewer.worker.latents
    g = gen.cached(viewer.args.latent) if gen is not None else None
    if g is None:
        viewer.say("fit view: the head is not generated yet", error=True)
        return "not generated"
    means = g.means[0].detach().float().cpu()  # [N, 3]
    small = len(means) <= QUANTILE_MAX_POINTS
    lo = torch.quantile(means, 0.01, dim=0) if small else means.min(0).values  # [3]
    hi = torch.quantile(means, 0.99, dim=0) if small else means.max(0).values  # [3]
    centre = ((lo + hi) / 2).tolist()
    half_diag = float(torch.linalg.norm(hi - lo)) / 2
    viewer.camera.fit(centre, half_diag)
    viewer.say(f"fit view: look-at ({centre[0]:+.2f}, {centre[1]:+.2f}, {centre[2]:+.2f}), "
               f"radius {viewer.args.camera.radius:.2f}")
    return None
