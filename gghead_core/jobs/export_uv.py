"""``export-uv``: the generator's UV attribute maps of one head, as a folder.

The folder holds one 16-bit PNG per map (``<name>.png``; 3-channel maps as RGB), ``uv_maps.npz`` with the raw
float arrays (every map, its display range ``range__<name>``, the generator's raw planes and the
texel <-> Gaussian mapping), ``uv_maps.json`` (a manifest: what each file is, its range and how to decode the
PNG back to values) and ``recipe.json``. All of it appears at once or not at all (one output transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.pipeline import LatentSpec
from gghead_core.uv_maps import MAP_INFO, MAP_NAMES, UVMaps, encode_png16, map_to_uint16, uv_maps

NPZ_NAME = "uv_maps.npz"
MANIFEST_NAME = "uv_maps.json"
OWNER_RULE = (
    "a Gaussian's owner texel is the texel whose square [k - 1/2, k + 1/2) holds its sample point on each axis "
    "(k = floor(f + 1/2) of the continuous texel coordinate grid_sample reads, clipped to the plane): the texel "
    "with the largest bilinear weight; gaussian_owner_texel[i] = (row, col) of Gaussian i"
)


def png_name(map_name: str) -> str:
    return f"{map_name}.png"


@dataclass(frozen=True)
class ExportUVJob:
    latent: LatentSpec = field(default_factory=LatentSpec)

    command: ClassVar[str] = "export-uv"
    output_kind: ClassVar[OutputKind] = "folder"

    @staticmethod
    def output_names() -> tuple[str, ...]:
        """The files this job writes into its folder (besides ``recipe.json``): an existing one is refused
        without ``--overwrite``."""
        return tuple(png_name(n) for n in MAP_NAMES) + (NPZ_NAME, MANIFEST_NAME)

    def run(self, ctx: JobContext) -> JobResult:
        total = 2
        ctx.tick(0, total)
        maps = uv_maps(ctx.G, self.latent)
        ctx.check_cancel()
        ctx.tick(1, total)
        recipe = ctx.recipe(seeds=self.latent.seeds, latent=self.latent, cameras=[], settings=None)
        writers: dict[str, Any] = {png_name(n): _png_writer(maps, n) for n in MAP_NAMES}
        writers[NPZ_NAME] = lambda p: _write_npz(p, maps)
        writers[MANIFEST_NAME] = lambda p: p.write_text(json.dumps(manifest(maps), indent=1) + "\n", encoding="utf-8")
        ctx.write_folder(writers, recipe)
        ctx.tick(total, total)
        return ctx.result(1)


def _png_writer(maps: UVMaps, name: str):
    def write(path: Path) -> None:
        path.write_bytes(encode_png16(map_to_uint16(maps.maps[name], maps.ranges[name])))

    return write


def npz_arrays(maps: UVMaps) -> dict[str, np.ndarray]:
    """What ``uv_maps.npz`` holds (also what tests compare with the generator)."""
    arrays: dict[str, np.ndarray] = {name: maps.maps[name] for name in MAP_NAMES}
    arrays.update({f"range__{name}": np.asarray(maps.ranges[name], np.float64) for name in MAP_NAMES})
    arrays["raw_planes"] = maps.raw_planes
    arrays["gaussian_owner_texel"] = maps.mapping.owner_rc.astype(np.int32)
    arrays["gaussian_sample_texel"] = maps.mapping.sample_rc
    return arrays


def _write_npz(path: Path, maps: UVMaps) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to the temp name
        # numeric arrays only (no pickles); naming allow_pickle also keeps **arrays from matching that parameter
        np.savez_compressed(fh, allow_pickle=False, **npz_arrays(maps))


def manifest(maps: UVMaps) -> dict[str, Any]:
    return {
        "format": "gghead-uv-maps",
        "format_version": 1,
        "resolution": maps.resolution,
        "layout": "row = v (plane row), column = u (plane column), as the generator's planes",
        "png_decoding": "value = lo + png / 65535 * (hi - lo), with [lo, hi] = range; values outside were clipped",
        "owner_rule": OWNER_RULE,
        "raw_plane_channels": {k: list(v) for k, v in maps.channel_slices.items()},
        "maps": {
            name: {
                "file": png_name(name),
                "channels": info.channels,
                "range": list(maps.ranges[name]),
                "range_source": "fixed" if info.fixed_range is not None else "data (texels that spawn Gaussians)",
                "unit": info.unit,
                "description": info.description,
            }
            for name, info in MAP_INFO.items()
        },
    }
