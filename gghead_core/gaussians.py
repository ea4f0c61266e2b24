"""The Gaussians value object: what the generator produces and every renderer and exporter consumes.

All tensors are batched (leading dimension B, one head per batch element) and already *activated*: these are
exactly the values a 3DGS rasterizer takes (scales, not log-scales; opacities, not logits; unit quaternions).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

SH_C0 = 0.28209479177387814
"""Degree-0 SH basis constant, ``1 / (2 sqrt(pi))`` (spec Appendix A): a DC coefficient ``c`` is the colour
``0.5 + SH_C0 * c``. The one definition; the generator, the exporters and the renderers import it."""


@dataclass
class Gaussians:
    """A batch of 3D Gaussian heads.

    Attributes:
        means: ``[B, N, 3]`` world-space centres (EG3D frame: y up, face toward +z).
        quats: ``[B, N, 4]`` unit quaternions ``(w, x, y, z)`` exactly as the rasterizer uses them
            (GGHead's channel-order quirk already applied, see spec 3.6.3).
        scales: ``[B, N, 3]`` activated per-axis standard deviations (``exp`` of the log-scale).
        opacities: ``[B, N]`` activated opacities. GGHead's ``1.002*sigmoid(x) - 0.001`` may leave [0, 1]
            by 0.001; renderers clamp where their math needs it, exporters clip.
        sh: ``[B, N, K, 3]`` spherical-harmonics coefficients, ``K = (sh_degree + 1) ** 2``, coefficient-major
            and RGB-minor (index 0 is the DC term).
    """

    means: torch.Tensor  # [B, N, 3]
    quats: torch.Tensor  # [B, N, 4]
    scales: torch.Tensor  # [B, N, 3]
    opacities: torch.Tensor  # [B, N]
    sh: torch.Tensor  # [B, N, K, 3]

    def __post_init__(self) -> None:
        b, n = self.means.shape[:2]
        expected = {
            "means": (b, n, 3),
            "quats": (b, n, 4),
            "scales": (b, n, 3),
            "opacities": (b, n),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name} has shape {got}, expected {shape}")
        if self.sh.dim() != 4 or tuple(self.sh.shape[:2]) != (b, n) or self.sh.shape[3] != 3:
            raise ValueError(f"Gaussians.sh has shape {tuple(self.sh.shape)}, expected ({b}, {n}, K, 3)")
        k = self.sh.shape[2]
        if int(round(k**0.5)) ** 2 != k:
            raise ValueError(f"Gaussians.sh has {k} coefficients; expected a square number (sh_degree+1)^2")

    @property
    def batch_size(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[1])

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[2] ** 0.5)) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    def _map(self, fn) -> Gaussians:
        return Gaussians(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> Gaussians:
        return self._map(lambda t: t.detach())

    def __getitem__(self, index: int | slice) -> Gaussians:
        """Select heads along the batch dimension; the result stays batched (``g[0]`` has B=1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda t: t[index])

    @staticmethod
    def cat(items: list[Gaussians]) -> Gaussians:
        """Concatenate batches of heads with the same N and SH degree."""
        if not items:
            raise ValueError("Gaussians.cat needs at least one item")
        return Gaussians(**{f.name: torch.cat([getattr(g, f.name) for g in items]) for f in fields(Gaussians)})
