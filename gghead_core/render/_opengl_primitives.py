"""Which primitive draws each chunk of splats: point sprites, one triangle or one quad per Gaussian.

Why a module of its own: on software GL the choice is a measured cost model (CPU time per Gaussian and per
fragment on llvmpipe) applied per draw chunk to the projection pass's footprint statistics; on hardware GPUs
it is always quads. The model, the statistics it reads (:class:`FrameStats`, also what
``OpenGLRasterizer.last_stats`` reports) and the choice are kept together so a re-measurement changes one
place. :class:`_PrimitivesMixin` is a base class of :class:`~._opengl.OpenGLRasterizer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._opengl_context import OpenGLError
from ._opengl_upload import _Scene

# Cost model of the three primitives on software renderers: CPU ns per drawn Gaussian and per fragment,
# fitted on llvmpipe (2-core AMD EPYC, Mesa 22.3.6) with the demo head (47k Gaussians) at 256/512/1024 px,
# process CPU time of the raster pass (bench/render_opengl.py --primitives). Sprites are cheapest per
# Gaussian but cover the ellipse's bounding square; quads hug the ellipse but cost two triangles and four
# vertices; one triangle around the ellipse sits in between (30 % more area than the quad). Measured
# (ms CPU, points / triangles / quads): 256 px 54 / 63 / 89, 512 px 100 / 100-109 / 125-137,
# 1024 px 270-280 / 217-224 / 230.
_PRIMITIVE_COST_NS = {  # (per Gaussian, per fragment)
    "points": (850.0, 4.6),
    "triangles": (930.0, 7.2),
    "quads": (1520.0, 8.4),
}
_TRIANGLE_AREA_RATIO = 3.0 * math.sqrt(3.0) / 4.0  # triangle around the unit disk (inradius 1) / its square


@dataclass(frozen=True)
class FrameStats:
    """What the last frame drew (from project.comp). The counts are zeros when the statistics were not read
    back: on the GL 3.3 path, and on hardware GL unless points are forced (quads need no decision)."""

    visible: int = 0
    max_point_size: float = 0.0
    quad_pixels: float = 0.0  # estimated fragments with quads
    point_pixels: float = 0.0  # estimated fragments with point sprites
    primitive: str = "quads"  # the one drawn, or "mixed" when chunks differ (see chunk_primitives)
    chunk_primitives: tuple[str, ...] = ()  # per draw chunk, in drawing order

    @staticmethod
    def combine(chunks: list[FrameStats], primitives: list[str]) -> FrameStats:
        """The frame's totals from per-chunk statistics (an empty list: nothing was read back)."""
        kinds = set(primitives)
        return FrameStats(
            visible=sum(c.visible for c in chunks),
            max_point_size=max((c.max_point_size for c in chunks), default=0.0),
            quad_pixels=sum(c.quad_pixels for c in chunks),
            point_pixels=sum(c.point_pixels for c in chunks),
            primitive=kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "quads"),
            chunk_primitives=tuple(primitives),
        )

    @property
    def triangle_pixels(self) -> float:
        """Estimated fragments with one triangle per Gaussian (same frame as the quad, 1.3x its area)."""
        return _TRIANGLE_AREA_RATIO * self.quad_pixels


class _PrimitivesMixin:
    """Reading the footprint statistics and choosing the primitive per draw chunk."""

    # Set by OpenGLRasterizer.__init__ / _init_gl / _create_objects.
    _scene: _Scene
    _stats_buf: int
    _primitive_request: str
    _max_point_size: float
    is_software: bool

    if TYPE_CHECKING:  # defined by OpenGLRasterizer and _BuffersMixin, sibling base classes

        def _draw_chunk(self) -> int: ...

        def _buffer_read(self, GL, buf: int, out: np.ndarray) -> np.ndarray: ...

    def _read_stats(self, GL) -> list[FrameStats]:
        """Footprint statistics of the projection pass per draw chunk (waits for it). Pixel counts are
        extrapolated from the 1-in-8 sample; the sprite size is exact above 32 px, reported as 32 below."""
        chunks = -(-self._scene.count // self._draw_chunk())
        raw = self._buffer_read(GL, self._stats_buf, np.empty((chunks, 4), np.uint32))
        return [FrameStats(visible=8 * int(c[3]), max_point_size=float(max(c[0], 32)),
                           quad_pixels=128.0 * float(c[1]), point_pixels=128.0 * float(c[2])) for c in raw]

    def _choose_primitives(self, chunks: list[FrameStats]) -> list[str]:
        """One primitive per draw chunk: the requested one, or for ``"auto"`` on software GL the cheapest for
        that chunk by the measured cost model (within one head, round splats and long ones come in different
        depth ranges: the demo head at 512 px mixes sprites and triangles, 8 % less modelled CPU than either
        alone). Hardware GPUs: quads, the fewest fragments. Sprites only where the largest one fits."""
        request = self._primitive_request
        if request == "points":
            largest = max((c.max_point_size for c in chunks), default=0.0)
            if largest > self._max_point_size:
                raise OpenGLError(f"primitive='points': a sprite of {largest:.0f} px exceeds this GL's "
                                  f"point size limit {self._max_point_size:.0f}")
            return ["points"] * len(chunks)
        if request in ("quads", "triangles"):
            return [request] * len(chunks)
        if not self.is_software:
            return ["quads"] * len(chunks)
        chosen = []
        for c in chunks:
            pixels = {"points": c.point_pixels, "triangles": c.triangle_pixels, "quads": c.quad_pixels}
            costs = {prim: per_gaussian * c.visible + per_fragment * pixels[prim]
                     for prim, (per_gaussian, per_fragment) in _PRIMITIVE_COST_NS.items()
                     if prim != "points" or c.max_point_size <= self._max_point_size}
            chosen.append(min(costs, key=costs.__getitem__))
        return chosen
