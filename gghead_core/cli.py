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
import math
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROG = "main.py"
HEADLESS_HINT = (
    "no display available for the viewer; use the headless commands instead: "
    f"python {PROG} info|render|turntable|interpolate|grid|export-ply|replay --help"
)


class UsageError(Exception):
    """Bad command-line arguments (argparse's errors are routed here so they print as one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------------------------------------------
# Argument types (each raises ArgumentTypeError -> one-line usage error)
# --------------------------------------------------------------------------------------------------------------


def _seed_type(text: str) -> int:
    from gghead_core.latents import parse_seed

    try:
        return parse_seed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed_list_type(text: str) -> list[int]:
    from gghead_core.latents import parse_seed_list

    try:
        return parse_seed_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_type(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _float_list_type(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _xyz_type(text: str) -> tuple[float, float, float]:
    values = _float_list_type(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z, got {text!r}")
    return (values[0], values[1], values[2])


def _cutoff_type(text: str) -> int:
    value = _int_type(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"cutoff must be non-negative, got {value}")
    return value


# Options whose values may start with "-" (negative numbers in lists): "--yaws -30,0,30" -> "--yaws=-30,0,30".
_NEGATIVE_OK = ("--yaws", "--look-at", "--background", "--yaw", "--pitch")


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in _NEGATIVE_OK and i + 1 < len(argv) and argv[i + 1].startswith("-") and _looks_numeric(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _looks_numeric(text: str) -> bool:
    try:
        [float(v) for v in text.split(",")]
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """``--ckpt``/``--device``/``--quiet`` on the main parser (with defaults) and on every subcommand (with
    SUPPRESS defaults, so a value given before the command is not reset by the subparser)."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    parser.add_argument("--ckpt", default=d(None), metavar="PATH",
                        help="checkpoint: official .pkl or our .safetensors (default: the bundled demo model)")
    parser.add_argument("--device", default=d("auto"), choices=("auto", "cpu", "cuda"),
                        help="where the generator runs (auto: CUDA when available)")
    parser.add_argument("--quiet", "-q", action="store_true", default=d(False), help="no progress bar")


def _render_options(p: argparse.ArgumentParser, resolution: int) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--resolution", type=_int_type, default=resolution,
                   help=f"image size in pixels, a multiple of 16 up to 4096 (default {resolution})")
    g.add_argument("--backend", default="auto", choices=("auto", "gsplat", "opengl", "torch"))
    g.add_argument("--mode", default="rgb", choices=("rgb", "alpha", "depth"))
    g.add_argument("--background", default="white", metavar="white|black|transparent|R,G,B",
                   help="background (R,G,B floats in [0,1]); transparent needs PNG output")
    g.add_argument("--sh-ref", default="frontal", choices=("frontal", "view"),
                   help="SH colours from the fixed frontal camera (official default) or from each view")


def _latent_options(p: argparse.ArgumentParser, seed_required: bool = True) -> None:
    g = p.add_argument_group("latent")
    if seed_required:
        g.add_argument("--seed", type=_seed_type, required=True, help="latent seed (0 .. 2^32-1)")
    g.add_argument("--psi", type=_float_type, default=0.7, help="truncation psi (default 0.7)")
    g.add_argument("--cutoff", type=_cutoff_type, default=None, help="truncate only the first K ws rows")
    g.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))


def _output_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True, metavar="PATH", help=what)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="GGHead viewer and headless tools. Without a command the desktop viewer opens.",
        epilog=(
            "Every output X gets a recipe X.json (a frame folder: folder/recipe.json); "
            "'replay X.json' reproduces X. Existing files are never replaced without --overwrite. "
            "Exit codes: 0 ok, 1 runtime error, 2 bad arguments or output path, 130 interrupted."
        ),
    )
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        return p

    add("info", "print the model's key facts and the renderer that would be used")

    p = add("convert", "convert a checkpoint (.pkl or .safetensors) to our .safetensors format")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = add("render", "render one image of one head to PNG")
    _latent_options(p)
    g = p.add_argument_group("camera")
    g.add_argument("--yaw", type=_float_type, default=0.0, help="degrees; positive moves the camera toward +x")
    g.add_argument("--pitch", type=_float_type, default=0.0, help="degrees; positive looks down from above")
    g.add_argument("--radius", type=_float_type, default=2.7)
    g.add_argument("--look-at", type=_xyz_type, default=(0.0, 0.0, 0.0), metavar="X,Y,Z")
    g.add_argument("--fov", type=_float_type, default=None, help="field of view in degrees (default 13.37)")
    _render_options(p, 1024)
    _output_options(p, "output .png")

    p = add("turntable", "render a head along a camera loop to .mp4, .gif or a folder of PNGs")
    _latent_options(p)
    p.add_argument("--frames", type=_int_type, default=96, help="number of frames (default 96)")
    p.add_argument("--fps", type=_float_type, default=24.0, help="frames per second (default 24)")
    p.add_argument("--path", default="circle", choices=("circle", "orbit"),
                   help="circle: the official sample script's camera circle (default); orbit: yaw around the head")
    p.add_argument("--pitch", type=_float_type, default=0.0, help="tilt of the path in degrees")
    p.add_argument("--radius", type=_float_type, default=2.7, help="camera distance (default 2.7)")
    p.add_argument("--yaw-range", type=_float_type, default=360.0,
                   help="orbit only: 360 turns once; less swings between -range/2 and +range/2")
    _render_options(p, 512)
    _output_options(p, "output .mp4, .gif or folder/ (numbered PNGs)")

    p = add("interpolate", "morph between seeds into a video")
    p.add_argument("--seeds", type=_seed_list_type, required=True, help="e.g. 0,1,2 or 0-4")
    p.add_argument("--frames-per-seed", type=_int_type, required=True, help="frames per transition")
    p.add_argument("--fps", type=_float_type, default=24.0)
    p.add_argument("--space", default="w", choices=("w", "z"), help="interpolate in W (default) or Z (official)")
    p.add_argument("--method", default="lerp", choices=("lerp", "slerp"))
    p.add_argument("--loop", action="store_true", help="return to the first seed (official schedule)")
    p.add_argument("--orbit", action="store_true", help="move the camera on the official circle, one turn per seed")
    p.add_argument("--conditioning", default="frontal", choices=("frontal", "camera"),
                   help="mapping label: frontal camera (default) or each frame's camera (official script)")
    _latent_options(p, seed_required=False)
    g = p.add_argument_group("fixed camera (without --orbit)")
    g.add_argument("--yaw", type=_float_type, default=0.0)
    g.add_argument("--pitch", type=_float_type, default=0.0)
    g.add_argument("--radius", type=_float_type, default=2.7)
    _render_options(p, 512)
    _output_options(p, "output .mp4, .gif or folder/")

    p = add("grid", "seeds x views in one PNG")
    p.add_argument("--seeds", type=_seed_list_type, required=True, help="e.g. 0-7")
    p.add_argument("--yaws", type=_float_list_type, default=[0.0], help="view yaws in degrees, e.g. -30,0,30")
    p.add_argument("--cols", type=_int_type, default=None,
                   help="seeds per row (default: one per row with several yaws, else near-square)")
    p.add_argument("--pitch", type=_float_type, default=0.0)
    p.add_argument("--radius", type=_float_type, default=2.7)
    _latent_options(p, seed_required=False)
    _render_options(p, 256)
    _output_options(p, "output .png")

    p = add("export-ply", "write the head's Gaussians as a 3DGS .ply (or a compact .splat)")
    _latent_options(p)
    p.add_argument("--format", default=None, choices=("ply", "splat"), help="default: from the extension")
    _output_options(p, "output .ply or .splat")

    p = add("replay", "run a recipe (.json sidecar) again")
    p.add_argument("recipe", metavar="RECIPE.json")
    p.add_argument("--out", default=None, metavar="PATH", help="output path (default: the recipe's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser


# --------------------------------------------------------------------------------------------------------------
# Commands
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
    from gghead_core.batch import RenderSettings, parse_background

    return RenderSettings(
        resolution=args.resolution, backend=args.backend, mode=args.mode,
        background=parse_background(args.background), sh_ref=args.sh_ref,
    )


def _latent(args: argparse.Namespace, seed: int = 0) -> Any:
    from gghead_core.batch import LatentSpec

    return LatentSpec(seed=getattr(args, "seed", seed), psi=args.psi, cutoff=args.cutoff, noise_mode=args.noise_mode)


def make_job(args: argparse.Namespace) -> Any:
    """The job dataclass for a rendering/export command (validated: raises JobError/OutputError)."""
    from gghead_core import batch as b
    from gghead_core.camera import DEFAULT_FOV_DEG

    cmd = args.command
    if cmd == "render":
        job = b.StillJob(
            latent=_latent(args),
            camera=b.CameraSpec(yaw=args.yaw, pitch=args.pitch, radius=args.radius, look_at=args.look_at,
                                fov_deg=DEFAULT_FOV_DEG if args.fov is None else args.fov),
            settings=_settings(args),
        )
    elif cmd == "turntable":
        job = b.TurntableJob(latent=_latent(args), frames=args.frames, fps=args.fps, path=args.path,
                             pitch=args.pitch, radius=args.radius, yaw_range=args.yaw_range, settings=_settings(args))
    elif cmd == "interpolate":
        job = b.InterpolationJob(
            seeds=args.seeds, frames_per_seed=args.frames_per_seed, fps=args.fps, space=args.space,
            method=args.method, loop=args.loop, orbit=args.orbit, conditioning=args.conditioning, psi=args.psi,
            cutoff=args.cutoff, noise_mode=args.noise_mode,
            camera=b.CameraSpec(yaw=args.yaw, pitch=args.pitch, radius=args.radius), settings=_settings(args),
        )
    elif cmd == "grid":
        job = b.GridJob(seeds=args.seeds, yaws=args.yaws, pitch=args.pitch, radius=args.radius, cols=args.cols,
                        psi=args.psi, cutoff=args.cutoff, noise_mode=args.noise_mode, settings=_settings(args))
    elif cmd == "export-ply":
        from gghead_core import export as ex

        fmt = args.format
        ext = ex.check_extension(args.out, ex.GAUSSIAN_EXTENSIONS)
        if fmt is None:
            fmt = ext[1:]
        job = b.ExportJob(latent=_latent(args), format=fmt)
    else:  # pragma: no cover - the parser only dispatches known commands
        raise UsageError(f"unknown command {cmd!r}")
    job.validate()
    return job


def precheck_output(job: Any, out: str, overwrite: bool) -> None:
    """Refuse a bad output path before the (slow) generator is loaded: extension, existing files, writability."""
    from gghead_core import batch as b
    from gghead_core import export as ex

    if job.command in ("render", "grid"):
        ex.check_extension(out, ex.IMAGE_EXTENSIONS)
        ex.check_output_file(out, overwrite=overwrite)
        ex.check_output_file(ex.sidecar_path(out, folder=False), overwrite=overwrite)
    elif job.command in ("turntable", "interpolate"):
        b.check_video_target(out, job.settings, overwrite)
    elif job.command == "export-ply":
        ext = ex.check_extension(out, ex.GAUSSIAN_EXTENSIONS)
        if ext != "." + job.format:
            raise b.JobError(f"--format {job.format} does not match the extension of {out!r}")
        ex.check_output_file(out, overwrite=overwrite)
        ex.check_output_file(ex.sidecar_path(out, folder=False), overwrite=overwrite)


def _run_job(G: Any, job: Any, out: str, args: argparse.Namespace, argv: list[str]) -> int:
    from gghead_core import batch as b

    bar = _ProgressBar(job.command, args.quiet)
    cancel = threading.Event()
    try:
        result = b.run_job(G, job, out, overwrite=args.overwrite, progress=bar, cancel=cancel, argv=argv)
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
    job = make_job(args)
    precheck_output(job, args.out, args.overwrite)
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
    from gghead_core import batch as b
    from gghead_core import export as ex

    recipe = ex.read_recipe(args.recipe)
    job = b.job_for_replay(recipe)
    out = args.out if args.out is not None else recipe.output
    precheck_output(job, out, args.overwrite)
    ckpt = args.ckpt
    recorded = recipe.checkpoint or {}
    if ckpt is None and recorded.get("path") and Path(recorded["path"]).is_file():
        ckpt = recorded["path"]
    if args.device == "auto" and recipe.renderer and recipe.renderer.get("device"):
        args.device = "cuda" if str(recipe.renderer["device"]).startswith("cuda") else "cpu"
    threads = (recipe.renderer or {}).get("torch_threads")
    if isinstance(threads, int) and threads > 0:
        import torch

        torch.set_num_threads(threads)  # CPU reductions can round differently with another thread count
    G = _load(args, ckpt)
    want = recorded.get("sha256") or ""
    if want and G.checkpoint_sha256 != want:
        raise ReplayMismatch(
            f"checkpoint {G.checkpoint_path} (sha256 {G.checkpoint_sha256[:12]}...) is not the one the recipe "
            f"was made with (sha256 {want[:12]}...); pass the right file with --ckpt"
        )
    return _run_job(G, job, out, args, argv)


class ReplayMismatch(Exception):
    """The checkpoint found for a replay is not the recipe's."""


def launch_gui(args: argparse.Namespace) -> int:
    """No command: open the desktop viewer (lazy import: the CLI never needs DearPyGui)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # DearPyGui aborts the process without a display (notes 1): refuse before importing it.
        print(f"error: {HEADLESS_HINT}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from app.viewer import run_viewer
    except ImportError as exc:
        print(f"error: the viewer cannot start ({exc}); {HEADLESS_HINT}", file=sys.stderr)
        return EXIT_RUNTIME
    try:
        run_viewer(args.ckpt, device=args.device)
    except Exception as exc:
        if type(exc).__name__ == "DisplayUnavailableError":
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first if len(first) <= 500 else first[:497] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``sys.exit(main())`` in ``main.py``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("GGHEAD_DEBUG") == "1"
    try:
        args = build_parser().parse_args(_join_negative_values(argv))
    except UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        return launch_gui(args)
    from gghead_core.batch import Cancelled, JobError
    from gghead_core.checkpoint import CheckpointError
    from gghead_core.config import ConfigError
    from gghead_core.export import OutputError, RecipeError

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
    except (UsageError, JobError, OutputError, RecipeError) as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, ConfigError, ReplayMismatch) as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_RUNTIME
    except MemoryError:
        print("error: out of memory (try a lower --resolution)", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:  # renderer/backend failures, missing GPU, disk full ...: one line, no traceback
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_RUNTIME
