"""The dataset loop: plan on rank 0, batches of heads on every rank, the merge on rank 0.

    spec = SampleSpec(seeds=tuple(range(1000)), cameras=CameraDistribution("random", views=8), ...)
    summary = run_sample(spec, "out/", ckpt=None, device="auto", batch=8)

Each batch: ``ws`` from :func:`gghead_core.pipeline.make_ws` per seed (frontal conditioning, as every other
command), one ``G.synthesis`` call for the batch, then every head is rendered from each of its cameras by
:func:`gghead_core.render.render` with the :class:`~gghead_core.pipeline.RenderSettings` and written through
:class:`~gghead_core.dataset.writer.HeadStaging` (complete or absent). Progress is summed over the ranks once per
round (all ranks run the same number of rounds, so the collectives always match).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from gghead_core import export as ex
from gghead_core._files import file_sha256
from gghead_core.camera import Camera
from gghead_core.dataset import sharding
from gghead_core.dataset.cameras import CameraDistribution, camera_label, opengl_cam2world
from gghead_core.dataset.writer import (
    HEAD_JSON,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    DatasetError,
    DatasetFolder,
    depth_name,
    depth_png_scale,
    dumps,
    head_rel,
    image_name,
    mask_name,
    write_gray_png,
)
from gghead_core.gaussians import Gaussians
from gghead_core.pipeline import LatentSpec, RenderSettings, make_ws
from gghead_core.vocabulary import SpecError, check_int, check_seed, one_line

DepthFormat = Literal["png", "npy"]
DEPTH_FORMATS: tuple[str, ...] = get_args(DepthFormat)
MAX_BATCH = 1024
CRASH_ENV = "GGHEAD_SAMPLE_CRASH_AFTER"
"""Test hook, ``RANK:N``: that rank stops dead (``os._exit``) after committing N heads, with the next head
written to its staging folder but not committed -- what a SIGKILL at the worst moment leaves behind."""

_set = object.__setattr__


MAX_SAMPLE_SEEDS = 4_000_000  # a dataset's seed list is held in memory by every rank (about 150 MB at this size)


def parse_sample_seeds(text: str) -> list[int]:
    """``"0-999999"``, ``"0,5,10-20"``: the other commands' seed lists, up to MAX_SAMPLE_SEEDS seeds (datasets
    reach millions of heads). Raises ValueError with one sentence naming the bad item."""
    from gghead_core.latents import parse_seed_list

    return parse_seed_list(text, limit=MAX_SAMPLE_SEEDS)


def seeds_text(seeds: Sequence[int]) -> str:
    """Order-preserving compact form: ``[0, 1, 2, 9, 3]`` -> ``"0-2,9,3"`` (ascending runs collapsed)."""
    from gghead_core.latents import format_seed_list

    return format_seed_list(seeds)


@dataclass(frozen=True)
class SampleSpec:
    """What a dataset is: every argument that changes its files (the manifest stores them; a folder made with
    other values is refused). Throughput knobs (batch, device, processes) are not part of it."""

    seeds: tuple[int, ...]
    cameras: CameraDistribution = CameraDistribution()
    latent: LatentSpec = LatentSpec()  # psi, cutoff, noise mode; the seed field is replaced per head
    settings: RenderSettings = RenderSettings(resolution=256)
    alpha: bool = False
    depth: DepthFormat | None = None
    ply: bool = False
    transforms: bool = False

    def __post_init__(self) -> None:
        seeds = tuple(check_seed(s) for s in self.seeds)
        if not seeds:
            raise SpecError("sample needs at least one seed")
        if len(seeds) > MAX_SAMPLE_SEEDS:
            raise SpecError(f"a dataset takes at most {MAX_SAMPLE_SEEDS} seeds, got {len(seeds)}")
        seen: set[int] = set()
        for s in seeds:
            if s in seen:
                raise SpecError(f"seed list repeats seed {s}: every head of a dataset is one seed")
            seen.add(s)
        _set(self, "seeds", seeds)
        if not isinstance(self.cameras, CameraDistribution):
            raise SpecError("cameras must be a CameraDistribution")
        lat = self.latent
        if not isinstance(lat, LatentSpec):
            raise SpecError("latent must be a LatentSpec")
        if lat.noise_mode == "random":
            raise SpecError("noise mode random makes heads irreproducible (no resume); use const or none")
        if lat.seed_b is not None or lat.mix is not None or lat.edits:
            raise SpecError("sample takes psi, cutoff and noise mode only (no interpolation, mixing or edits)")
        _set(self, "latent", LatentSpec(psi=lat.psi, cutoff=lat.cutoff, noise_mode=lat.noise_mode))
        if not isinstance(self.settings, RenderSettings) or self.settings.mode != "rgb":
            raise SpecError("sample renders mode rgb (alpha and depth are separate files: --alpha, --depth)")
        if self.depth is not None and self.depth not in DEPTH_FORMATS:
            raise SpecError(f"depth format must be one of {', '.join(DEPTH_FORMATS)}; got {self.depth!r}")
        for name in ("alpha", "ply", "transforms"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be true or false")

    @property
    def depth_scale(self) -> float | None:
        """Scene units per step of a 16-bit depth PNG (None unless ``depth == "png"``)."""
        return depth_png_scale(self.cameras.radius) if self.depth == "png" else None

    def arguments(self) -> dict[str, Any]:
        """The manifest's ``arguments`` (JSON values; two jobs are the same dataset iff these are equal)."""
        c, s, lat = self.cameras, self.settings, self.latent
        bg = s.background
        data = {
            "seeds": seeds_text(self.seeds),
            "views": c.views, "cameras": c.kind, "yaw_range_deg": list(c.yaw_range_deg),
            "pitch_range_deg": list(c.pitch_range_deg), "radius": c.radius, "fov_deg": c.fov_deg,
            "camera_seed": c.seed,
            "psi": lat.psi, "cutoff": lat.cutoff, "noise_mode": lat.noise_mode,
            "resolution": s.resolution, "backend": s.backend, "background": list(bg) if isinstance(bg, tuple) else bg,
            "sh_ref": s.sh_ref,
            "alpha": self.alpha, "depth": self.depth, "ply": self.ply, "transforms": self.transforms,
        }
        return json.loads(json.dumps(data))


@dataclass(frozen=True)
class SampleSummary:
    """What a run did (rank 0's view; heads summed over the ranks)."""

    out: Path
    heads: int  # in the dataset
    made: int  # written by this run
    already: int  # complete before this run
    images: int  # labels in dataset.json
    seconds: float  # the generation loop, wall clock
    world_size: int
    backend: str | None

    @property
    def heads_per_s(self) -> float:
        return self.made / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------------------
# One head
# --------------------------------------------------------------------------------------------------------------


def write_head(folder: Path, seed: int, g: Gaussians, spec: SampleSpec, render_fn: Callable[..., Any]) -> str | None:
    """Render head ``g`` (B=1) from its cameras and write all its files into ``folder``; returns the backend."""
    settings = spec.settings
    kwargs = settings.render_kwargs()
    res_px = settings.resolution
    rel = head_rel(seed)
    labels: list[list[Any]] = []
    views: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    backend = None
    specs = spec.cameras.specs(seed)
    cams = spec.cameras.cameras(seed)
    for v, (cs, cam) in enumerate(zip(specs, cams)):
        with torch.no_grad():
            res = render_fn(g, cam, **kwargs)
        backend = getattr(res, "backend", None)
        image = res.rgba()[0] if settings.transparent else res.image[0]  # [H, W, 4|3]
        ex.write_png(folder / image_name(v), ex.to_uint8(image))
        frame: dict[str, Any] = {"file_path": image_name(v)}
        if spec.alpha:
            write_gray_png(folder / mask_name(v), ex.to_uint8(res.alpha[0]))  # [H, W]
            frame["mask_path"] = mask_name(v)
        if spec.depth is not None:
            depth = res.depth[0].detach().to("cpu", torch.float32).numpy()  # [H, W], 0 where nothing was hit
            if spec.depth == "png":
                steps = np.clip(np.rint(depth / spec.depth_scale), 0, 65535).astype(np.uint16)
                write_gray_png(folder / depth_name(v, "png"), steps)
            else:
                np.save(folder / depth_name(v, "npy"), np.ascontiguousarray(depth))
            frame["depth_file_path"] = depth_name(v, spec.depth)
        frame["transform_matrix"] = opengl_cam2world(cam).tolist()
        frames.append(frame)
        labels.append([f"{rel}/{image_name(v)}", [float(x) for x in camera_label(cam)]])
        views.append({"yaw_deg": cs.yaw_deg, "pitch_deg": cs.pitch_deg, "radius": cs.radius, "fov_deg": cs.fov_deg})
    if spec.ply:
        ex.write_ply(folder / "gaussians.ply", ex.gaussians_to_ply_arrays(g, 0))
    if spec.transforms:
        folder.joinpath("transforms.json").write_text(dumps(transforms_json(cams[0], res_px, frames, spec)),
                                                      encoding="utf-8")
    head = {"seed": seed, "backend": backend, "labels": labels, "views": views}
    folder.joinpath(HEAD_JSON).write_text(dumps(head), encoding="utf-8")
    return backend


def transforms_json(cam: Camera, resolution: int, frames: list[dict[str, Any]], spec: SampleSpec) -> dict[str, Any]:
    """nerfstudio's format: shared pinhole intrinsics in pixels, per-frame cam2world in OpenGL camera axes."""
    k = cam.intrinsics_pixels(resolution, resolution)
    data: dict[str, Any] = {
        "camera_model": "OPENCV",
        "fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2]),
        "w": resolution, "h": resolution,
    }
    if spec.depth == "png":
        data["depth_unit_scale_factor"] = spec.depth_scale  # nerfstudio: pass it as the dataparser option
    elif spec.depth == "npy":
        data["depth_unit_scale_factor"] = 1.0
    data["frames"] = frames
    return data


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


def manifest_record(spec: SampleSpec, ckpt_path: Path, sha256: str) -> dict[str, Any]:
    files = {
        "images": "GGGGGGG/SSSSSSSSSS/img_VV.png (group = seed // 1000, seed, view)",
        "labels": "dataset.json: EG3D labels, cam2world (OpenCV, row-major 4x4) + normalised intrinsics (3x3)",
        "head": "GGGGGGG/SSSSSSSSSS/head.json",
    }
    if spec.alpha:
        files["masks"] = "GGGGGGG/SSSSSSSSSS/mask_VV.png (8-bit alpha)"
    if spec.depth == "png":
        files["depth"] = "GGGGGGG/SSSSSSSSSS/depth_VV.png (16-bit; depth = value * depth_scale; 0 = no hit)"
    elif spec.depth == "npy":
        files["depth"] = "GGGGGGG/SSSSSSSSSS/depth_VV.npy (float32 camera-z depth; 0 = no hit)"
    if spec.ply:
        files["gaussians"] = "GGGGGGG/SSSSSSSSSS/gaussians.ply (3DGS PLY)"
    if spec.transforms:
        files["transforms"] = "GGGGGGG/SSSSSSSSSS/transforms.json (nerfstudio, OpenGL camera axes)"
    record: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "command": "sample",
        "arguments": spec.arguments(),
        "checkpoint": {"sha256": sha256, "path": str(ckpt_path.resolve())},
        "conditioning": "frontal camera label (as every other command); labels are the render cameras",
        "files": files,
        "versions": ex.package_versions(),
    }
    if spec.depth_scale is not None:
        record["depth_scale"] = spec.depth_scale
    return record


def _crash_point(rank: int) -> int | None:
    text = os.environ.get(CRASH_ENV, "")
    if not text:
        return None
    r, _, n = text.partition(":")
    return int(n) if r.strip() == str(rank) else None


def run_sample(
    spec: SampleSpec,
    out: str | os.PathLike,
    *,
    ckpt: str | os.PathLike | None,
    device: str = "auto",
    batch: int = 4,
    make_zip: bool = False,
    quiet: bool = False,
    load_generator_fn: Callable[..., Any] | None = None,
    render_fn: Callable[..., Any] | None = None,
) -> SampleSummary | None:
    """Make (or complete) the dataset ``spec`` in folder ``out``. Returns the summary on rank 0, None on the
    other ranks. Raises DatasetError (one sentence) on every rank when the folder belongs to another dataset."""
    from gghead_core.checkpoint import DEMO_CHECKPOINT

    batch = check_int(batch, "batch", lo=1, hi=MAX_BATCH)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ctx, device = sharding.init_from_env(device)
    previous = _sigterm_raises()
    lock = None
    try:
        folder = DatasetFolder(Path(out))
        ckpt_path = Path(ckpt) if ckpt is not None else DEMO_CHECKPOINT
        record: dict[str, Any] | None = None
        failure: Exception | None = None
        plan: tuple[str | None, list[tuple[list[int], list[int]]], int] = (None, [], 0)
        if ctx.is_main:
            try:
                try:
                    sha = file_sha256(ckpt_path)
                except (OSError, ValueError) as exc:  # ValueError: not a regular file (a FIFO never blocks)
                    raise DatasetError(f"cannot read checkpoint {os.fspath(ckpt_path)!r}: "
                                       f"{getattr(exc, 'strerror', None) or exc}") from None
                record = manifest_record(spec, ckpt_path, sha)
                if folder.root.is_dir():
                    lock = folder.lock()
                folder.prepare(record)
                if lock is None:
                    lock = folder.lock()
                done = folder.complete_seeds(spec.seeds)
                todo = [(b, [s for s in b if s not in done])
                        for b in sharding.global_batches(spec.seeds, batch)]
                plan = (None, [t for t in todo if t[1]], len(done))
            except Exception as exc:  # every rank must leave the broadcast below, then rank 0 raises the original
                failure = exc
                plan = (one_line(exc), [], 0)
        plan = sharding.broadcast_object(ctx, plan)
        error, todo, already = plan
        if failure is not None:
            raise failure
        if error is not None:
            raise DatasetError(error)  # the other ranks: rank 0 reports it
        return _run_plan(ctx, spec, folder, todo, already, ckpt, device, make_zip, quiet,
                         load_generator_fn, render_fn, record)
    finally:
        if lock is not None:
            lock.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sharding.shutdown(ctx)


def _run_plan(ctx: sharding.DistContext, spec: SampleSpec, folder: DatasetFolder,
              todo: list[tuple[list[int], list[int]]], already: int, ckpt: Any, device: str, make_zip: bool,
              quiet: bool, load_generator_fn: Callable[..., Any] | None, render_fn: Callable[..., Any] | None,
              record: dict[str, Any] | None) -> SampleSummary | None:
    if load_generator_fn is None:
        from gghead_core import load_generator

        load_generator_fn = load_generator
    if render_fn is None:
        from gghead_core.pipeline import default_render_fn

        render_fn = default_render_fn()
    G = load_generator_fn(ckpt, device=device)
    mine = sharding.deal(todo, ctx.rank, ctx.world_size)
    n_rounds = sharding.rounds(len(todo), ctx.world_size)
    to_make = sum(len(m) for _, m in todo)
    bar = None
    if ctx.is_main and not quiet and to_make:
        from tqdm import tqdm

        bar = tqdm(total=len(spec.seeds), initial=already, desc="sample", unit="head", file=sys.stderr,
                   dynamic_ncols=True, leave=False)
    crash_after = _crash_point(ctx.rank)
    staging = folder.staging()
    made_here = made_all = 0
    backend = None
    t0 = time.perf_counter()
    try:
        for r in range(n_rounds):
            written = 0
            if r < len(mine):
                batch_seeds, missing = mine[r]
                want = set(missing)
                with torch.no_grad():
                    ws = torch.cat([make_ws(G, replace(spec.latent, seed=s)) for s in batch_seeds])  # [B, num_ws, w]
                    g = G.synthesis(ws, noise_mode=spec.latent.noise_mode)
                for i, s in enumerate(batch_seeds):
                    if s not in want:
                        continue
                    tmp = staging.begin(s)
                    backend = write_head(tmp, s, g[i], spec, render_fn) or backend
                    if crash_after is not None and made_here >= crash_after:
                        os._exit(3)  # test hook: dies with a filled, uncommitted staging folder
                    if staging.commit(s):
                        written += 1
                        made_here += 1
            total = sharding.all_reduce_sum(ctx, written, device)
            made_all += total
            if bar is not None:
                bar.update(total)
    finally:
        staging.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    sharding.barrier(ctx)  # every rank's heads are committed before the one merge
    if not ctx.is_main:
        return None
    images = folder.merge(spec.seeds, record or {}, make_zip=make_zip, world_size=ctx.world_size)
    return SampleSummary(out=folder.root, heads=len(spec.seeds), made=made_all, already=already, images=images,
                         seconds=seconds, world_size=ctx.world_size, backend=backend)


def _sigterm_raises() -> Any:
    """torchrun stops the other ranks with SIGTERM when one fails: turn it into KeyboardInterrupt so the
    staging folder is removed on the way out (a committed head is never touched)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)
