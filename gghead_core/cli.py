"""Command line: ``python main.py [--ckpt PATH] [--device D] <command> ...``; no command opens the viewer.

Commands: ``info``, ``convert``, ``render``, ``turntable``, ``interpolate``, ``grid``, ``export-ply``, ``export-uv``,
``timeline``, ``sample``, ``directions``, ``replay``.
The global options (``--ckpt``, ``--device``, ``--quiet``) work before or after the command.

Every failure ends in exactly one line on stderr and a non-zero exit code, never a traceback:
2 for bad arguments or output paths (nothing was computed), 1 for runtime failures (checkpoint, renderer),
130 for Ctrl-C (the output is rolled back). Set ``GGHEAD_DEBUG=1`` to see tracebacks.

Every output gets a recipe sidecar (``out.png`` -> ``out.png.json``; a frame folder ``dir/`` ->
``dir/recipe.json``) that ``replay`` runs again, identically on the same machine and backend.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gghead_core._cli_parser import PROG, UsageError, build_parser, join_negative_values
from gghead_core.vocabulary import HEADLESS_HINT, one_line

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# --------------------------------------------------------------------------------------------------------------


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


_GENERATOR_CACHE: dict[tuple, Any] = {}


def _load(args: argparse.Namespace, ckpt: str | None = None) -> Any:
    """Load the generator; in-process callers (tests, scripts calling ``main`` repeatedly) reuse the last one
    while the file is unchanged (same path, size and mtime), since loading a .pkl costs seconds."""
    from gghead_core import load_generator
    from gghead_core.checkpoint import DEMO_CHECKPOINT

    path = ckpt if ckpt is not None else args.ckpt
    device = _device(args.device)
    resolved = Path(path if path is not None else DEMO_CHECKPOINT)
    try:
        st = resolved.stat()
        key: tuple | None = (str(resolved.resolve()), st.st_size, st.st_mtime_ns, device)
    except OSError:
        key = None  # let load_generator produce its one-line error
    if key is not None and key in _GENERATOR_CACHE:
        return _GENERATOR_CACHE[key]
    G = load_generator(path, device=device)
    if key is not None:
        _GENERATOR_CACHE.clear()
        _GENERATOR_CACHE[key] = G
    return G


class _ProgressBar:
    """tqdm bar driven by the jobs' ``progress(done, total)`` callback."""

    def __init__(self, desc: str, quiet: bool, unit: str = "frame") -> None:
        self.desc, self.quiet, self.unit = desc, quiet, unit
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        bar = self.bar
        if bar is None:
            from tqdm import tqdm

            bar = self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=False,
                                  dynamic_ncols=True)
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _settings(args: argparse.Namespace) -> Any:
    from gghead_core.pipeline import RenderSettings

    return RenderSettings(resolution=args.resolution, backend=args.backend, mode=args.mode,
                          background=args.background, sh_ref=args.sh_ref,
                          depth_colormap=getattr(args, "depth_colormap", "rainbow"))


def _latent(args: argparse.Namespace, *, with_seed: bool = True) -> Any:
    from gghead_core.pipeline import LatentSpec

    seed = args.seed if with_seed else 0
    return LatentSpec(seed=seed, psi=args.psi, cutoff=args.cutoff, noise_mode=args.noise_mode,
                      edits=tuple(getattr(args, "edit", None) or ()))


def make_job(args: argparse.Namespace) -> Any:
    """The job for a rendering/export command, in the pipeline vocabulary (validated when made: raises
    SpecError with one sentence)."""
    from gghead_core import export as ex
    from gghead_core import jobs
    from gghead_core.camera import DEFAULT_FOV_DEG, CameraSpec

    cmd = args.command
    if cmd == "render":
        camera = CameraSpec(yaw_deg=args.yaw, pitch_deg=args.pitch, radius=args.radius, look_at=args.look_at,
                            fov_deg=DEFAULT_FOV_DEG if args.fov is None else args.fov)
        return jobs.StillJob(latent=_latent(args), camera=camera, settings=_settings(args))
    if cmd == "turntable":
        return jobs.TurntableJob(latent=_latent(args), frames=args.frames, fps=args.fps, path=args.path,
                                 pitch_deg=args.pitch, radius=args.radius, yaw_range_deg=args.yaw_range,
                                 settings=_settings(args))
    if cmd == "interpolate":
        return jobs.InterpolationJob(
            seeds=tuple(args.seeds), frames_per_seed=args.frames_per_seed, fps=args.fps, space=args.space,
            method=args.method, loop=args.loop, orbit=args.orbit, conditioning=args.conditioning,
            latent=_latent(args, with_seed=False),
            camera=CameraSpec(yaw_deg=args.yaw, pitch_deg=args.pitch, radius=args.radius), settings=_settings(args),
        )
    if cmd == "grid":
        return jobs.GridJob(seeds=tuple(args.seeds), yaws_deg=tuple(args.yaws), pitch_deg=args.pitch,
                            radius=args.radius, cols=args.cols, latent=_latent(args, with_seed=False),
                            settings=_settings(args), labels=bool(getattr(args, "labels", False)))
    if cmd == "export-ply":
        from gghead_core.jobs.export_gaussians import GaussianFormat

        fmt: GaussianFormat
        if args.format:
            fmt = args.format  # the parser's choices: "ply" or "splat"
        else:  # check_extension accepts only ".ply" and ".splat" (OutputError otherwise)
            fmt = "ply" if ex.check_extension(args.out, ex.GAUSSIAN_EXTENSIONS) == ".ply" else "splat"
        return jobs.ExportJob(latent=_latent(args), format=fmt)
    if cmd == "timeline":
        return make_timeline_job(args)
    if cmd == "export-uv":
        return jobs.ExportUVJob(latent=_latent(args))
    raise UsageError(f"unknown command {cmd!r}")  # pragma: no cover - the parser only dispatches known commands


def make_timeline_job(args: argparse.Namespace) -> Any:
    """``timeline T.json``: the file's timeline (``--fps`` replaces its frame rate) with the render options."""
    from dataclasses import replace

    from gghead_core import jobs
    from gghead_core.timeline import load_timeline

    timeline = load_timeline(args.timeline)
    if args.fps is not None:
        timeline = replace(timeline, fps=args.fps)  # validated again: a frame count over the limit is refused
    return jobs.TimelineJob(timeline=timeline, settings=_settings(args))


def _run_job(G: Any, job: Any, out: str, args: argparse.Namespace, argv: list[str]) -> int:
    from gghead_core import jobs

    bar = _ProgressBar(job.command, args.quiet)
    try:
        result = jobs.run_job(G, job, out, overwrite=args.overwrite, progress=bar, cancel=threading.Event(),
                              argv=argv)
    finally:
        bar.close()
    requested = getattr(getattr(job, "settings", None), "backend", "auto")
    if requested != "auto" and result.backend and result.backend != requested:
        # The renderer falls back instead of failing; say so (a replay on another backend is not bit-exact).
        print(f"note: {result.backend_reason}", file=sys.stderr)
    if not args.quiet:
        extra = f", backend {result.backend}" if result.backend else ""
        print(f"wrote {result.output} ({result.frames} frame{'s' if result.frames != 1 else ''}, "
              f"{result.seconds:.1f} s{extra}); recipe {result.recipe}")
    return EXIT_OK


def cmd_render_like(args: argparse.Namespace, argv: list[str]) -> int:
    from gghead_core import jobs

    job = make_job(args)
    jobs.check_output(job, args.out, args.overwrite)  # before the (slow) generator is loaded
    G = _load(args)
    return _run_job(G, job, args.out, args, argv)


def cmd_info(args: argparse.Namespace, argv: list[str]) -> int:
    G = _load(args)
    cfg = G.config
    lines = [
        ("checkpoint", str(G.checkpoint_path) if G.checkpoint_path else "(built in memory)"),
        ("sha256", G.checkpoint_sha256 or "-"),
        ("device", str(G.device)),
        ("z / w / c dims", f"{G.z_dim} / {G.w_dim} / {G.c_dim}"),
        ("ws rows (num_ws)", str(G.num_ws)),
        ("Gaussians per head", f"{G.num_gaussians:,}"),
        ("UV plane resolution", f"{G.plane_resolution} x {G.plane_resolution}"),
        ("SH degree", str(G.sh_degree)),
        ("template", str(getattr(cfg, "template", "unknown"))),
        ("trained render resolution", str(getattr(cfg, "neural_rendering_resolution", "?"))),
    ]
    ignored = getattr(cfg, "ignored_fields", ())
    if ignored:
        shown = ", ".join(ignored[:4]) + (", ..." if len(ignored) > 4 else "")
        lines.append(("ignored config fields", f"{len(ignored)} not used at inference ({shown})"))
    lines += _backend_lines(str(G.device))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    return EXIT_OK


def _backend_lines(device: str) -> list[tuple[str, str]]:
    try:
        from gghead_core import render as r
    except Exception as exc:  # the renderer package failed to import: say so, info is still useful
        return [("render backends", f"unavailable ({type(exc).__name__}: {exc})")]
    out: list[tuple[str, str]] = []
    if hasattr(r, "available_backends"):
        try:
            out.append(("render backends", ", ".join(r.available_backends()) or "none"))
        except Exception as exc:
            out.append(("render backends", f"? ({exc})"))
    if hasattr(r, "resolve_backend"):
        try:
            picked = r.resolve_backend("auto")
            if isinstance(picked, tuple):
                name, reason = picked[0], picked[1] if len(picked) > 1 else ""
            else:
                name, reason = getattr(picked, "name", picked), getattr(picked, "reason", "")
            out.append(("auto backend", f"{name}" + (f" ({reason})" if reason else "")))
        except Exception as exc:
            out.append(("auto backend", f"? ({exc})"))
    return out


def cmd_convert(args: argparse.Namespace, argv: list[str]) -> int:
    from gghead_core import export as ex
    from gghead_core.checkpoint import convert_checkpoint

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ex.OutputError(f"convert writes .safetensors files; got {args.output!r}")
    ex.check_output_file(out, overwrite=args.overwrite)
    src = Path(args.input)
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise ex.OutputError("input and output are the same file")
    try:
        convert_checkpoint(args.input, out, overwrite=args.overwrite)
    except FileExistsError as exc:
        raise ex.OutputError(str(exc)) from None
    if not args.quiet:
        print(f"wrote {out}")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, argv: list[str]) -> int:
    """Run a recipe again: the recipe and output are checked first, then the checkpoint's sha256 (before the
    file is parsed: a wrong or tampered checkpoint is refused without reading it as a pickle)."""
    from gghead_core import export as ex
    from gghead_core import jobs
    from gghead_core._files import file_sha256
    from gghead_core.checkpoint import DEMO_CHECKPOINT

    recipe = ex.read_recipe(args.recipe)
    job = jobs.job_from_recipe(recipe)
    out = args.out if args.out is not None else recipe.output
    jobs.check_output(job, out, args.overwrite)
    recorded = recipe.checkpoint if isinstance(recipe.checkpoint, dict) else {}
    ckpt = args.ckpt
    if ckpt is None and isinstance(recorded.get("path"), str) and Path(recorded["path"]).is_file():
        ckpt = recorded["path"]
    want = recorded.get("sha256") or ""
    if want and not args.allow_other_checkpoint:
        path = Path(ckpt) if ckpt is not None else DEMO_CHECKPOINT
        try:
            have = file_sha256(path)
        except (OSError, ValueError) as exc:  # ValueError: not a regular file
            raise ReplayMismatch(f"cannot read checkpoint {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
        if have != want:
            raise ReplayMismatch(
                f"checkpoint {str(path)!r} (sha256 {have[:12]}...) is not the one the recipe was made with "
                f"(sha256 {str(want)[:12]}...); pass the right file with --ckpt, or --allow-other-checkpoint "
                "to replay anyway"
            )
    if args.device == "auto" and isinstance(recipe.renderer, dict) and recipe.renderer.get("device"):
        args.device = "cuda" if str(recipe.renderer["device"]).startswith("cuda") else "cpu"
    threads = (recipe.renderer or {}).get("torch_threads") if isinstance(recipe.renderer, dict) else None
    if isinstance(threads, int) and not isinstance(threads, bool) and 0 < threads <= (os.cpu_count() or 1) * 4:
        import torch

        torch.set_num_threads(threads)  # CPU reductions can round differently with another thread count
    G = _load(args, ckpt)
    return _run_job(G, job, out, args, argv)


def cmd_sample(args: argparse.Namespace, argv: list[str]) -> int:
    """A multi-view dataset (gghead_core.dataset); under torchrun every rank runs this and only rank 0 prints."""
    from gghead_core.camera import DEFAULT_FOV_DEG
    from gghead_core.dataset import CameraDistribution, DatasetError, SampleSpec, run_sample
    from gghead_core.dataset.sharding import env_rank
    from gghead_core.pipeline import LatentSpec, RenderSettings

    main_rank = env_rank() == 0
    spec = SampleSpec(
        seeds=tuple(args.seeds),
        cameras=CameraDistribution(kind=args.cameras, views=args.views, yaw_range_deg=args.yaw_range,
                                   pitch_range_deg=args.pitch_range, radius=args.radius,
                                   fov_deg=DEFAULT_FOV_DEG if args.fov is None else args.fov, seed=args.camera_seed),
        latent=LatentSpec(psi=args.psi, cutoff=args.cutoff, noise_mode=args.noise_mode),
        settings=RenderSettings(resolution=args.resolution, backend=args.backend, background=args.background,
                                sh_ref=args.sh_ref),
        alpha=args.alpha, depth=args.depth, ply=args.ply, transforms=args.transforms,
    )
    try:
        summary = run_sample(spec, args.out, ckpt=args.ckpt, device=args.device, batch=args.batch,
                             make_zip=args.zip, quiet=args.quiet or not main_rank)
    except DatasetError:
        if not main_rank:
            return EXIT_USAGE  # rank 0 says it once
        raise
    if summary is not None and not args.quiet:
        print(f"sample: {summary.heads} heads x {spec.cameras.views} views in {summary.out} "
              f"({summary.made} made now, {summary.already} already complete); {summary.made} heads in "
              f"{summary.seconds:.1f} s = {summary.heads_per_s:.3f} heads/s on {summary.world_size} process"
              f"{'es' if summary.world_size != 1 else ''}" + (f", backend {summary.backend}" if summary.backend else "")
              + f"; dataset.json has {summary.images} labels")
    return EXIT_OK


def cmd_directions(args: argparse.Namespace, argv: list[str]) -> int:
    """Print the model's directions (computing and caching the PCA on first use); add or remove custom ones."""
    from gghead_core import directions as dirs

    if args.add is None and (args.with_seeds is not None or args.without_seeds is not None or args.replace):
        raise UsageError("--with, --without and --replace belong to --add NAME")
    if args.add is not None:
        try:
            dirs.check_custom_name(args.add)
        except dirs.DirectionsError as exc:
            raise UsageError(str(exc)) from None
        if not args.with_seeds or not args.without_seeds:
            raise UsageError(f"--add {args.add} needs both --with SEEDS and --without SEEDS")
    if args.remove is not None and args.add is not None:
        raise UsageError("--add and --remove cannot be combined")
    G = _load(args)
    sha = G.checkpoint_sha256
    bar = _ProgressBar("directions", args.quiet, unit="latent")
    try:
        samples = args.samples if args.samples is not None else dirs.DEFAULT_SAMPLES
        ds = dirs.load_or_compute(G, samples=samples, recompute=args.recompute, progress=bar)
        if args.add is not None:
            ds = dirs.add_custom_direction(G, args.add, args.with_seeds, args.without_seeds,
                                           replace_existing=args.replace)
        if args.remove is not None:
            ds = dirs.remove_custom_direction(G, args.remove)
    finally:
        bar.close()
    where = str(dirs.cache_path(sha)) if sha else "not cached (model built in memory)"
    if ds.cache_note:
        where = f"not cached ({ds.cache_note})"
    print(f"directions of {G.checkpoint_path.name if G.checkpoint_path else 'this model'}: PCA of W from "
          f"{ds.samples:,} latents (psi 1, frontal label); cache: {where}")
    if args.recompute:
        print("note: recomputed; recipes made with directions from another sample count no longer replay identically")
    elif args.samples is not None and args.samples != ds.samples:
        print(f"note: the cache was computed with {ds.samples:,} samples; add --recompute to use {args.samples:,} "
              "(recipes made with the old directions then no longer replay identically)")
    print(f"{'direction':<12} {'std':>8} {'explained':>10} {'cumulative':>11}")
    cumulative = 0.0
    for name, std, ex in zip(ds.pc_names, ds.stds.tolist(), ds.explained.tolist()):
        cumulative += ex
        print(f"{name:<12} {std:8.4f} {100 * ex:9.2f}% {100 * cumulative:10.2f}%")
    for c in ds.custom:
        share = c.std**2 / ds.total_variance if ds.total_variance > 0 else 0.0
        print(f"{c.name:<12} {c.std:8.4f} {100 * share:9.2f}%  with {_seeds_text(c.with_seeds)} "
              f"without {_seeds_text(c.without_seeds)}")
    if not args.quiet:
        print("use: main.py render --seed S --edit pc0=+2 --edit NAME=-1.5@0-6 ... (AMOUNT in standard deviations, "
              "layers FIRST-LAST inclusive)")
    return EXIT_OK


def _seeds_text(seeds: Sequence[int]) -> str:
    from gghead_core.latents import format_seed_list

    return format_seed_list(seeds)


class ReplayMismatch(Exception):
    """The checkpoint found for a replay is not the recipe's."""


def launch_gui(args: argparse.Namespace) -> int:
    """No command: open the desktop viewer (lazy import: the CLI never needs DearPyGui)."""
    try:
        from app.viewer import DisplayUnavailableError, check_display, run_viewer
    except ImportError as exc:
        print(f"error: the viewer cannot start ({exc}); {HEADLESS_HINT}", file=sys.stderr)
        return EXIT_RUNTIME
    try:
        check_display()  # before DearPyGui runs: without a display it aborts the process (notes 1)
        if args.screenshot is not None:
            from gghead_core import export as ex

            ex.check_extension(args.screenshot, ex.IMAGE_EXTENSIONS)
            ex.check_output_file(args.screenshot, overwrite=False)
        run_viewer(args.ckpt, device=args.device, screenshot=args.screenshot)
    except DisplayUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "info": cmd_info,
    "convert": cmd_convert,
    "render": cmd_render_like,
    "turntable": cmd_render_like,
    "interpolate": cmd_render_like,
    "grid": cmd_render_like,
    "export-ply": cmd_render_like,
    "timeline": cmd_render_like,
    "export-uv": cmd_render_like,
    "replay": cmd_replay,
    "sample": cmd_sample,
    "directions": cmd_directions,
}


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``sys.exit(main())`` in ``main.py``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("GGHEAD_DEBUG") == "1"
    try:
        args = build_parser().parse_args(join_negative_values(argv))
    except UsageError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        from gghead_core.export import OutputError

        try:
            return launch_gui(args)
        except OutputError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
    from gghead_core.checkpoint import CheckpointError
    from gghead_core.config import ConfigError
    from gghead_core.directions import DirectionsError
    from gghead_core.export import (
        InterruptedAfterCommit,
        OutputError,
        OutputWriteError,
        RecipeError,
        signals_as_interrupt,
    )
    from gghead_core.jobs import Cancelled
    from gghead_core.vocabulary import SpecError

    try:
        # SIGTERM and SIGHUP take Ctrl-C's path: the output transactions roll back, nothing half-written stays.
        with signals_as_interrupt():
            return COMMANDS[args.command](args, [PROG, *argv])
    except BrokenPipeError:  # e.g. `main.py info | head -3`: not an error worth a message
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    except InterruptedAfterCommit as exc:
        print(f"interrupted ({one_line(exc)}) after the outputs were complete: they are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt as exc:
        why = f" ({one_line(exc)})" if str(exc) else ""
        print(f"interrupted{why}: stopped, no partial output was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Cancelled:
        print("cancelled: no partial output was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, SpecError, OutputError, RecipeError) as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, ConfigError, ReplayMismatch, OutputWriteError, DirectionsError) as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_RUNTIME
    except MemoryError:
        print("error: out of memory (try a lower --resolution)", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:  # renderer/backend failures, missing GPU, disk full ...: one line, no traceback
        if debug:
            raise
        print(f"error: {one_line(exc, with_type=True)}", file=sys.stderr)
        return EXIT_RUNTIME
