"""Command line: ``python main.py [--ckpt PATH] [--device D] <command> ...``; no command opens the viewer.

Commands: ``info``, ``convert``, ``render``, ``turntable``, ``interpolate``, ``grid``, ``export-ply``, ``replay``.
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
from pathlib import Path
from typing import Any, Callable, Sequence

from gghead_core._cli_parser import HEADLESS_HINT, PROG, UsageError, build_parser, join_negative_values
from gghead_core.vocabulary import one_line

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

    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="frame", file=sys.stderr, leave=False,
                            dynamic_ncols=True)
        self.bar.n = done
        self.bar.refresh()

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
    return LatentSpec(seed=seed, psi=args.psi, cutoff=args.cutoff, noise_mode=args.noise_mode)


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
        fmt = args.format or ex.check_extension(args.out, ex.GAUSSIAN_EXTENSIONS)[1:]
        return jobs.ExportJob(latent=_latent(args), format=fmt)
    raise UsageError(f"unknown command {cmd!r}")  # pragma: no cover - the parser only dispatches known commands


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
            have = ex.file_sha256(path)
        except OSError as exc:
            raise ReplayMismatch(f"cannot read checkpoint {str(path)!r}: {exc.strerror or exc}") from None
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
        run_viewer(args.ckpt, device=args.device)
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
    "replay": cmd_replay,
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
        return launch_gui(args)
    from gghead_core.checkpoint import CheckpointError
    from gghead_core.config import ConfigError
    from gghead_core.export import OutputError, RecipeError
    from gghead_core.jobs import Cancelled
    from gghead_core.vocabulary import SpecError

    try:
        return COMMANDS[args.command](args, [PROG, *argv])
    except BrokenPipeError:  # e.g. `main.py info | head -3`: not an error worth a message
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted: stopped, no partial output was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Cancelled:
        print("cancelled: no partial output was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, SpecError, OutputError, RecipeError) as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, ConfigError, ReplayMismatch) as exc:
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
