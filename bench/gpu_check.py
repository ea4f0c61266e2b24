"""One prepared GPU run: the CUDA tests plus the GPU benchmarks of issue 11, into report.md + report.json.

    python bench/gpu_check.py --out DIR                 # CUDA when present, else CPU MODE
    python bench/gpu_check.py --out DIR --cpu           # force CPU MODE (what CI and tests run)
    bash bench/gpu_run.sh                               # on the device machine: install wheels, then this

Why one script: time on the GPU machine is a few minutes per session, so everything that runs there is
prepared and tested here. Every section is time-boxed (``--budget-s`` overall, a share per section) and
fails alone: an exception is written into the report and the next section runs. A CUDA fault is sticky for
the process, so after one the remaining GPU sections are marked as not run (with the reason).

Sections (the same in both modes):
  1. environment   torch / CUDA / device, gsplat and OpenGL status (OpenGL must say NVIDIA on a GPU run)
  2. tests         pytest on the CUDA test files (GGHEAD_REQUIRE_GPU=1 on CUDA: gsplat/EGL problems FAIL)
  3. generate      z -> Gaussians, batch 1, fp32 / fp16 / bf16 (+ each precision's error against fp32)
  4. gsplat        rasterization only, cached colours, at ``--resolution``
  5. opengl        ``render(backend="opengl")`` incl. sort and readback, at ``--resolution``
  6. orbit         viewer orbit frame: render (auto backend) + RGBA into a pinned display buffer
  7. animate       viewer animate frame: z-slerp + generate + render + copy
  8. batch         generate + render at ``--batch-resolution`` for each ``--batches``: heads per second

Timing: on CUDA each iteration is bracketed by CUDA events (median of >= ``--iters`` after ``--warmup``);
frames that end in a host copy (orbit, animate, batch) are also timed on the host clock including the final
event sync, which is what the viewer waits for. In CPU MODE the counts are tiny and the clocks are host clocks;
those figures are labelled "CPU MODE -- not GPU figures" everywhere and compared with no goal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads distort shared-CPU timings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from gghead_core import Generator, GeneratorConfig, load_generator  # noqa: E402
from gghead_core.camera import CameraSpec  # noqa: E402
from gghead_core.checkpoint import DEMO_CHECKPOINT  # noqa: E402
from gghead_core.latents import slerp  # noqa: E402
from gghead_core.render import FRONTAL_SH_CENTER, backend_status, render  # noqa: E402

CPU_BANNER = "CPU MODE \u2014 not GPU figures"
GOALS_MS = {  # issue 11, item 3 (H200, released-size head, 1024x1024)
    "generate fp16": 5.0,
    "generate bf16": 5.0,
    "gsplat raster": 2.0,
    "opengl raster incl. sort": 4.0,
    "orbit frame": 5.0,
    "animate frame": 10.0,
}
CUDA_TEST_FILES = (
    "tests/test_generator_cuda.py",
    "tests/test_render_gsplat_cuda.py",
    "tests/test_render_gsplat_status.py",
    "tests/test_opengl_context.py",
    "tests/test_opengl_render.py",
    "tests/test_render_opengl_integration.py",
)
SECTION_SHARES = {  # fraction of the overall budget each section may use (tests get the most)
    "environment": 0.03,
    "tests": 0.40,
    "generate": 0.12,
    "gsplat": 0.06,
    "opengl": 0.08,
    "orbit": 0.08,
    "animate": 0.10,
    "batch": 0.13,
}


# ------------------------------------------------------------------------------------------------------------
# Records


@dataclass
class Row:
    figure: str
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    n: int = 0
    clock: str = ""
    goal_ms: float | None = None
    met: bool | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Section:
    name: str
    status: str = "not run"  # ok | failed | timeboxed | unavailable | not run
    elapsed_s: float = 0.0
    reason: str = ""
    rows: list[Row] = field(default_factory=list)
    info: dict = field(default_factory=dict)


@dataclass
class Timing:
    samples_ms: list[float]
    clock: str
    timeboxed: bool

    def row(self, figure: str, goal_ms: float | None, gpu_mode: bool, **extra) -> Row:
        s = sorted(self.samples_ms)
        med = statistics.median(s) if s else None
        p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))] if s else None
        met = None if (not gpu_mode or goal_ms is None or med is None) else med <= goal_ms
        extra = {k: v for k, v in extra.items() if v is not None}
        if self.timeboxed:
            extra["timeboxed"] = True
        return Row(figure, med, p90, s[0] if s else None, len(s), self.clock, goal_ms if gpu_mode else None, met,
                   extra)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + max(0.0, seconds)

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


# ------------------------------------------------------------------------------------------------------------
# Timing helpers


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], *, warmup: int, iters: int, deadline: Deadline, cuda: bool,
            host_clock: bool = False) -> Timing:
    """Median-ready samples of ``fn``: CUDA events per iteration on CUDA (or the host clock including a final
    sync when ``host_clock``), perf_counter on the CPU. Stops early (at least one sample) at ``deadline``."""
    for _ in range(warmup):
        fn()
        if deadline.passed():
            break
    _sync(cuda)
    timeboxed = False
    if cuda and not host_clock:
        pairs = []
        for i in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
            if deadline.passed() and i + 1 < iters:
                timeboxed = True
                break
        torch.cuda.synchronize()
        return Timing([a.elapsed_time(b) for a, b in pairs], "CUDA events", timeboxed)
    samples = []
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(cuda)
        samples.append((time.perf_counter() - t0) * 1e3)
        if deadline.passed() and i + 1 < iters:
            timeboxed = True
            break
    return Timing(samples, "host clock + sync" if cuda else "host clock (CPU)", timeboxed)


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else round(10.0 * torch.log10(torch.tensor(1.0 / mse)).item(), 2)


PSNR_MIN_DB = 35.0  # issue 11: gsplat and OpenGL (NVIDIA EGL) against the torch reference


# ------------------------------------------------------------------------------------------------------------
# The run


class GpuCheck:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cuda = torch.cuda.is_available() and not args.cpu
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.sections: list[Section] = []
        self.t_start = time.monotonic()
        self.cuda_broken = ""
        self.G: Generator | None = None
        self.model_name = ""
        self.gaussians = None

    # -- infrastructure --------------------------------------------------------------------------------------
    def run_section(self, name: str, fn: Callable[[Section, Deadline], None]) -> Section:
        sec = Section(name)
        self.sections.append(sec)
        budget_left = self.args.budget_s - (time.monotonic() - self.t_start)
        share = SECTION_SHARES[name] * self.args.budget_s
        seconds = min(share, budget_left)
        if seconds <= 1:
            sec.reason = f"overall budget of {self.args.budget_s:.0f} s used up"
            return sec
        if self.cuda_broken and name != "environment":
            sec.reason = f"not run: an earlier section hit a CUDA error ({self.cuda_broken})"
            return sec
        t0 = time.monotonic()
        print(f"[gpu_check] {name} (up to {seconds:.0f} s) ...", flush=True)
        try:
            fn(sec, Deadline(seconds))
            if sec.status == "not run":
                sec.status = "timeboxed" if any(r.extra.get("timeboxed") for r in sec.rows) else "ok"
        except Exception as exc:  # one section failing must not lose the others
            sec.status = "failed"
            sec.reason = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            sec.info["traceback"] = traceback.format_exc()[-3000:]
            text = str(exc)
            if self.cuda and ("CUDA error" in text or "AcceleratorError" in type(exc).__name__
                              or "illegal memory access" in text):
                self.cuda_broken = sec.reason
        sec.elapsed_s = round(time.monotonic() - t0, 2)
        print(f"[gpu_check] {name}: {sec.status} in {sec.elapsed_s} s {sec.reason}", flush=True)
        self.write()  # after every section: an outer timeout (gpu_run.sh's) still leaves a partial report
        return sec

    def generator(self) -> Generator:
        if self.G is None:
            choice = self.args.model or ("released" if self.cuda else "demo")
            if choice == "released":
                # Released FFHQ size (~235k Gaussians) with random weights: the speed of a real checkpoint
                # (same shapes), not its values.
                torch.manual_seed(0)
                self.G = Generator(GeneratorConfig(n_uniform_flame_vertices=485)).eval().requires_grad_(False)
                self.model_name = "released size, random weights"
            elif choice == "tiny":
                torch.manual_seed(0)
                cfg = GeneratorConfig(channel_base=2048, channel_max=32, plane_resolution=64,
                                      n_uniform_flame_vertices=64)
                self.G = Generator(cfg).eval().requires_grad_(False)
                self.model_name = "tiny random generator"
            elif choice == "demo":
                if not DEMO_CHECKPOINT.is_file():
                    raise FileNotFoundError(f"demo checkpoint missing at {DEMO_CHECKPOINT}")
                self.G = load_generator(None)
                self.model_name = "bundled demo model"
            else:
                self.G = load_generator(choice)
                self.model_name = str(choice)
            self.G = self.G.to(self.device)
        return self.G

    def cached_gaussians(self):
        if self.gaussians is None:
            G = self.generator()
            with torch.no_grad():
                self.gaussians = G.synthesis(G.mapping(G.z_from_seed(0), truncation_psi=0.7))
        return self.gaussians

    def reference_image(self, res: int) -> torch.Tensor:
        """The torch reference rasterizer's picture of the cached head at yaw 20 (for PSNR checks)."""
        key = ("ref", res)
        if getattr(self, "_ref_key", None) != key:
            g = self.cached_gaussians()
            self._ref_image = render(g, CameraSpec(yaw_deg=20.0).to_camera(), res, backend="torch").image[0]
            self._ref_key = key
        return self._ref_image

    def check_psnr(self, sec: Section, row: Row, image: torch.Tensor, deadline: Deadline) -> None:
        if deadline.left() < 3:
            row.extra["psnr_vs_torch_db"] = "not measured (section time used up)"
            return
        value = psnr_db(image.to(self.device), self.reference_image(image.shape[0]))
        row.extra["psnr_vs_torch_db"] = value
        if self.cuda and value < PSNR_MIN_DB:
            sec.status = "failed"
            sec.reason = f"{row.figure}: {value} dB against the torch reference (< {PSNR_MIN_DB} dB)"

    def timing_kwargs(self, deadline: Deadline) -> dict:
        return dict(warmup=self.args.warmup, iters=self.args.iters, deadline=deadline, cuda=self.cuda)

    # -- sections --------------------------------------------------------------------------------------------
    def environment(self, sec: Section, deadline: Deadline) -> None:
        info = sec.info
        info["python"] = platform.python_version()
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["cpu_threads"] = torch.get_num_threads()
        info["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        info["platform"] = platform.platform()
        if self.cuda:
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = props.name
            info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            info["capability"] = f"{props.major}.{props.minor}"
            try:
                info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                                capture_output=True, text=True, timeout=10).stdout.strip()
            except Exception as exc:
                info["driver"] = f"unknown ({type(exc).__name__})"
        for name in ("gsplat", "opengl"):
            ok, why = backend_status(name)
            info[f"{name}_ok"], info[f"{name}_reason"] = ok, why
        # On a GPU run OpenGL must be NVIDIA's (EGL device), not Mesa's llvmpipe (preflight #3).
        info["opengl_on_nvidia"] = bool(info["opengl_ok"]) and "nvidia" in info["opengl_reason"].lower()
        if self.cuda and not info["opengl_on_nvidia"]:
            sec.status = "failed"
            sec.reason = f"OpenGL is not on the NVIDIA driver: {info['opengl_reason']}"
        if self.cuda and not info["gsplat_ok"]:
            sec.status = "failed"
            sec.reason = (sec.reason + "; " if sec.reason else "") + f"gsplat unavailable: {info['gsplat_reason']}"

    def tests(self, sec: Section, deadline: Deadline) -> None:
        out = Path(self.args.out)
        junit = out / "junit.xml"
        env = dict(os.environ)
        if self.cuda:
            env["GGHEAD_REQUIRE_GPU"] = "1"
            files = list(CUDA_TEST_FILES)
        else:
            env.pop("GGHEAD_REQUIRE_GPU", None)
            env["CUDA_VISIBLE_DEVICES"] = ""  # CPU MODE: the CUDA modules skip at collection, with their reasons
            files = [f for f in CUDA_TEST_FILES if "cuda" in f or "gsplat" in f]
        files = [f for f in files if (REPO / f).is_file()]
        cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", f"--junitxml={junit}", *files]
        sec.info["command"] = " ".join(cmd[1:])
        sec.info["GGHEAD_REQUIRE_GPU"] = env.get("GGHEAD_REQUIRE_GPU", "")
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=max(5.0, deadline.left()))
            sec.info["returncode"] = proc.returncode
            sec.info["output_tail"] = (proc.stdout + proc.stderr)[-4000:]
        except subprocess.TimeoutExpired as exc:
            sec.status = "timeboxed"
            sec.reason = f"pytest ran past its {exc.timeout:.0f} s share and was stopped"
            sec.info["output_tail"] = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes)
                                       else (exc.stdout or ""))[-4000:]
            return
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if junit.is_file():
            root = ET.parse(junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root)
            for suite in suites:
                for key in counts:
                    counts[key] += int(suite.get(key, 0))
        counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        sec.info["counts"] = counts
        if sec.info["returncode"] not in (0, 5):  # 5: nothing collected (every module skipped)
            sec.status = "failed"
            sec.reason = f"pytest exit {sec.info['returncode']}: {counts['failures']} failed, {counts['errors']} errors"

    def generate(self, sec: Section, deadline: Deadline) -> None:
        G = self.generator()
        sec.info["model"] = self.model_name
        sec.info["gaussians"] = G.num_gaussians
        z = G.z_from_seed(1)
        with torch.no_grad():
            ref = G.synthesis(G.mapping(z, truncation_psi=0.7))
        precisions = ("fp32", "fp16", "bf16")
        for i, precision in enumerate(precisions):
            per = Deadline(deadline.left() / (len(precisions) - i))

            def step(precision=precision):
                with torch.no_grad():
                    return G.synthesis(G.mapping(z, truncation_psi=0.7), precision=precision)

            out = step()
            errors = {k: float(f"{float((getattr(out, k) - getattr(ref, k)).abs().max()):.3g}")
                      for k in ("means", "quats", "scales", "opacities", "sh")}
            finite = all(bool(torch.isfinite(getattr(out, k)).all()) for k in errors)
            timing = time_fn(step, **self.timing_kwargs(per))
            sec.rows.append(timing.row(f"generate {precision}", GOALS_MS.get(f"generate {precision}"), self.cuda,
                                       max_abs_error_vs_fp32=errors, finite=finite))
            if deadline.passed():
                break
        if not self.cuda:
            sec.info["cuda_graphs"] = "not in CPU MODE (CUDA graphs need CUDA)"
            return
        # The speed option: the same z -> Gaussians replayed from a CUDA graph (Generator.graphed).
        for i, precision in enumerate(self.args.graph_precisions):
            if deadline.left() < 2:
                sec.info["cuda_graphs_skipped"] = self.args.graph_precisions[i:]
                break
            try:
                graphed = G.graphed(1, truncation_psi=0.7, precision=precision)
                out = graphed(z)
                with torch.no_grad():
                    eager = G.synthesis(G.mapping(z, truncation_psi=0.7), precision=precision)
                same = max(float((getattr(out, k) - getattr(eager, k)).abs().max()) for k in ("means", "sh"))
                share = Deadline(deadline.left() / (len(self.args.graph_precisions) - i))
                timing = time_fn(lambda graphed=graphed: graphed(z), **self.timing_kwargs(share))
                sec.rows.append(timing.row(f"generate {precision} (CUDA graph)",
                                           GOALS_MS.get(f"generate {precision}"), self.cuda,
                                           max_abs_diff_vs_eager=float(f"{same:.3g}")))
            except Exception as exc:  # a capture problem must not hide the eager rows
                sec.rows.append(Row(f"generate {precision} (CUDA graph)",
                                    extra={"error": f"{type(exc).__name__}: {str(exc).strip()[:200]}"}))
                if "CUDA error" in str(exc):
                    raise

    def gsplat(self, sec: Section, deadline: Deadline) -> None:
        ok, why = backend_status("gsplat")
        if not ok:
            sec.status, sec.reason = ("failed" if self.cuda else "unavailable"), why
            return
        from gghead_core.render._gsplat import rasterize_gsplat_batch
        from gghead_core.render._sh import sh_to_colors

        g = self.cached_gaussians()
        res = self.args.resolution
        cam = CameraSpec(yaw_deg=20.0).to_camera()
        colors = sh_to_colors(g.means, g.sh, torch.tensor(FRONTAL_SH_CENTER, device=g.means.device))
        viewmat = torch.tensor(cam.world2cam(), dtype=torch.float32, device=self.device)
        K = torch.tensor(cam.intrinsics_pixels(res, res), dtype=torch.float32, device=self.device)
        bg = torch.ones(3, device=self.device)

        def step():
            return rasterize_gsplat_batch(g.means, g.quats, g.scales, g.opacities, colors, viewmat, K, res, res, bg)

        timing = time_fn(step, **self.timing_kwargs(Deadline(deadline.left() * 0.6)))
        row = timing.row(f"gsplat raster {res}x{res}", GOALS_MS["gsplat raster"] if res == 1024 else None,
                         self.cuda, gaussians=g.num_gaussians)
        sec.rows.append(row)
        self.check_psnr(sec, row, render(g, cam, res, backend="gsplat").image[0], deadline)

    def opengl(self, sec: Section, deadline: Deadline) -> None:
        ok, why = backend_status("opengl")
        sec.info["opengl_reason"] = why
        if not ok:
            sec.status, sec.reason = ("failed" if self.cuda else "unavailable"), why
            return
        g = self.cached_gaussians()
        res = self.args.resolution
        cam = CameraSpec(yaw_deg=20.0).to_camera()
        splits: list[dict] = []

        def step():
            r = render(g, cam, res, backend="opengl")
            if r.backend != "opengl":
                raise RuntimeError(f"render() fell back to {r.backend}: {r.backend_reason}")
            splits.append(r.timings_ms)
            return r

        # OpenGL waits for its own readback, so the host clock is the honest one here.
        timing = time_fn(step, **self.timing_kwargs(Deadline(deadline.left() * 0.6)), host_clock=True)
        split = {k: round(statistics.median(s.get(k, 0.0) for s in splits), 3)
                 for k in sorted({k for s in splits for k in s})}
        row = timing.row(f"opengl raster incl. sort {res}x{res} (render())",
                         GOALS_MS["opengl raster incl. sort"] if res == 1024 else None, self.cuda,
                         split_ms=split, on_nvidia="nvidia" in why.lower())
        sec.rows.append(row)
        self.check_psnr(sec, row, step().image[0], deadline)

    def _display_copy(self, res: int):
        """A pinned float32 RGBA display buffer (the viewer's format) and a function filling it from an image."""
        pin = self.cuda
        host = torch.ones((res, res, 4), dtype=torch.float32, pin_memory=pin)
        staging = torch.ones((res, res, 4), dtype=torch.float32, device=self.device) if self.cuda else None
        done = torch.cuda.Event() if self.cuda else None

        def copy(image: torch.Tensor) -> None:  # image [H, W, 3]
            if staging is None:
                host[:, :, :3].copy_(image)
                return
            staging[:, :, :3].copy_(image)  # RGBA assembled on the GPU: one contiguous D2H copy
            host.copy_(staging, non_blocking=True)
            done.record()
            done.synchronize()  # the viewer needs the pixels now; wait on this copy only, not the device

        return host, copy

    def orbit(self, sec: Section, deadline: Deadline) -> None:
        g = self.cached_gaussians()
        res = self.args.resolution
        _, copy = self._display_copy(res)
        cams = [CameraSpec(yaw_deg=-40.0 + 2.0 * i).to_camera() for i in range(41)]
        state = {"i": 0, "backend": ""}

        def step():
            r = render(g, cams[state["i"] % len(cams)], res)
            state["i"] += 1
            state["backend"] = r.backend
            copy(r.image[0])

        timing = time_fn(step, **self.timing_kwargs(deadline), host_clock=True)
        sec.rows.append(timing.row(f"orbit frame {res}x{res} (render + copy to pinned RGBA)", GOALS_MS["orbit frame"]
                                   if res == 1024 else None, self.cuda, backend=state["backend"]))

    def animate(self, sec: Section, deadline: Deadline) -> None:
        G = self.generator()
        res = self.args.resolution
        _, copy = self._display_copy(res)
        za, zb = G.z_from_seed(3), G.z_from_seed(4)
        cam = CameraSpec(yaw_deg=0.0).to_camera()
        variants = [(p, False) for p in self.args.animate_precisions]
        if self.cuda:
            variants += [(p, True) for p in self.args.graph_precisions]
        for i, (precision, use_graph) in enumerate(variants):
            state = {"t": 0.0, "backend": ""}
            generate = None
            if use_graph:
                try:
                    generate = G.graphed(1, truncation_psi=0.7, precision=precision)
                except Exception as exc:
                    sec.rows.append(Row(f"animate frame {res}x{res} ({precision}, CUDA graph)",
                                        extra={"error": f"{type(exc).__name__}: {str(exc).strip()[:200]}"}))
                    continue

            def step(precision=precision, generate=generate, state=state):
                state["t"] = (state["t"] + 0.013) % 1.0
                with torch.no_grad():
                    z = slerp(za, zb, state["t"])  # as the viewer does, host reads of t included (#17)
                    if generate is not None:
                        g = generate(z)
                    else:
                        g = G.synthesis(G.mapping(z, truncation_psi=0.7), precision=precision)
                r = render(g, cam, res)
                state["backend"] = r.backend
                copy(r.image[0])

            share = Deadline(deadline.left() / (len(variants) - i))
            timing = time_fn(step, **self.timing_kwargs(share), host_clock=True)
            label = f"{precision}, CUDA graph" if use_graph else precision
            sec.rows.append(timing.row(f"animate frame {res}x{res} ({label})",
                                       GOALS_MS["animate frame"] if res == 1024 else None, self.cuda,
                                       backend=state["backend"]))
            if deadline.passed():
                break

    def batch(self, sec: Section, deadline: Deadline) -> None:
        G = self.generator()
        res = self.args.batch_resolution
        cam = CameraSpec(yaw_deg=15.0).to_camera()
        batches = self.args.batches
        for i, b in enumerate(batches):
            z = torch.cat([G.z_from_seed(10 + k) for k in range(b)])
            state = {"backend": ""}

            def step(z=z, state=state):
                with torch.no_grad():
                    g = G.synthesis(G.mapping(z, truncation_psi=0.7))
                r = render(g, cam, res)
                state["backend"] = r.backend
                return r.image.cpu()

            share = Deadline(deadline.left() / (len(batches) - i))
            kwargs = self.timing_kwargs(share)
            kwargs["iters"] = max(1, min(kwargs["iters"], self.args.batch_iters))
            timing = time_fn(step, **kwargs, host_clock=True)
            row = timing.row(f"batch {b}: generate + render {res}x{res} (+ host copy)", None, self.cuda,
                             backend=state["backend"])
            if row.median_ms:
                row.extra["heads_per_s"] = round(b * 1e3 / row.median_ms, 2)
            sec.rows.append(row)
            if deadline.passed():
                break

    # -- report ----------------------------------------------------------------------------------------------
    def write(self) -> dict:
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        mode = "cuda" if self.cuda else "cpu"
        data = {
            "mode": mode,
            "label": "GPU run" if self.cuda else CPU_BANNER,
            "created_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "budget_s": self.args.budget_s,
            "elapsed_s": round(time.monotonic() - self.t_start, 2),
            "settings": {k: v for k, v in vars(self.args).items() if k != "out"},
            "model": self.model_name,
            "sections": [asdict(s) for s in self.sections],
        }
        (out / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        (out / "report.md").write_text(self.markdown(data))
        return data

    def markdown(self, data: dict) -> str:
        lines = []
        title = "GPU check" if self.cuda else f"GPU check \u2014 {CPU_BANNER}"
        lines.append(f"# {title}\n")
        if not self.cuda:
            lines.append(f"> **{CPU_BANNER}.** This run had no CUDA device: tiny iteration counts, host clocks, "
                         "small model and resolution. It proves the script runs end to end; none of these numbers "
                         "says anything about a GPU.\n")
        env = next((s for s in self.sections if s.name == "environment"), None)
        if env is not None:
            lines.append("## Machine\n")
            for k, v in env.info.items():
                lines.append(f"- {k}: {v}")
            lines.append("")
        lines.append(f"Model: {self.model_name or '-'}; resolution {self.args.resolution}, batch resolution "
                     f"{self.args.batch_resolution}; warm-up {self.args.warmup}, iterations {self.args.iters}; "
                     f"budget {self.args.budget_s:.0f} s, used {data['elapsed_s']:.1f} s.\n")
        lines.append("## Sections\n")
        lines.append("| section | status | seconds | note |")
        lines.append("|---|---|---|---|")
        for s in self.sections:
            lines.append(f"| {s.name} | {s.status} | {s.elapsed_s:.1f} | {s.reason.replace('|', '/')} |")
        lines.append("")
        tests = next((s for s in self.sections if s.name == "tests"), None)
        if tests is not None and tests.info:
            lines.append("## Tests\n")
            lines.append(f"`{tests.info.get('command', '')}` (GGHEAD_REQUIRE_GPU="
                         f"{tests.info.get('GGHEAD_REQUIRE_GPU') or 'unset'}): {tests.info.get('counts', '-')}\n")
            tail = tests.info.get("output_tail", "")
            if tail:
                lines.append("```\n" + tail[-2500:].strip() + "\n```\n")
        lines.append("## Figures" + ("" if self.cuda else f" ({CPU_BANNER})") + "\n")
        lines.append("| figure | median ms | p90 ms | min ms | n | clock | goal ms | met | notes |")
        lines.append("|---|---|---|---|---|---|---|---|---|")

        def fmt(v):
            return "-" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}"

        for s in self.sections:
            for r in s.rows:
                met = "n/a (CPU MODE)" if not self.cuda else ("-" if r.met is None else "yes" if r.met else "**no**")
                notes = "; ".join(f"{k}={v}" for k, v in r.extra.items()).replace("|", "/")
                lines.append(f"| {r.figure} | {fmt(r.median_ms)} | {fmt(r.p90_ms)} | {fmt(r.min_ms)} | {r.n} | "
                             f"{r.clock} | {fmt(r.goal_ms)} | {met} | {notes} |")
        lines.append("")
        failed = [s for s in self.sections if s.status == "failed"]
        if failed:
            lines.append("## Failures\n")
            for s in failed:
                lines.append(f"### {s.name}\n\n{s.reason}\n")
                if s.info.get("traceback"):
                    lines.append("```\n" + s.info["traceback"].strip() + "\n```\n")
        return "\n".join(lines) + "\n"

    def run(self) -> dict:
        self.run_section("environment", self.environment)
        if not self.args.skip_tests:
            self.run_section("tests", self.tests)
        for name in ("generate", "gsplat", "opengl", "orbit", "animate", "batch"):
            self.run_section(name, getattr(self, name))
        return self.write()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for report.md, report.json and junit.xml")
    p.add_argument("--cpu", action="store_true", help="CPU MODE even where CUDA exists")
    p.add_argument("--model", default=None,
                   help="released (default on CUDA), demo (default on CPU), tiny, or a checkpoint path")
    p.add_argument("--budget-s", type=float, default=None, help="overall time limit (CUDA 330 s, CPU 50 s)")
    p.add_argument("--resolution", type=int, default=None, help="render resolution (CUDA 1024, CPU 128)")
    p.add_argument("--batch-resolution", type=int, default=None, help="batch section resolution (CUDA 512, CPU 64)")
    p.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes (CUDA 1 8 32, CPU 1 2)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations per figure (CUDA 60, CPU 2)")
    p.add_argument("--batch-iters", type=int, default=None, help="timed iterations per batch size (CUDA 20, CPU 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first (CUDA 5, CPU 1)")
    p.add_argument("--animate-precisions", nargs="+", default=None, choices=("fp32", "fp16", "bf16"),
                   help="precisions of the animate rows (CUDA fp32 fp16 bf16, CPU fp32)")
    p.add_argument("--graph-precisions", nargs="*", default=None, choices=("fp32", "fp16", "bf16"),
                   help="precisions also timed as CUDA graphs (Generator.graphed; CUDA fp32 fp16 bf16, CPU none)")
    p.add_argument("--skip-tests", action="store_true", help="no pytest section")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu
    defaults = dict(budget_s=330.0, resolution=1024, batch_resolution=512, batches=[1, 8, 32], iters=60,
                    batch_iters=20, warmup=5, animate_precisions=["fp32", "fp16", "bf16"],
                    graph_precisions=["fp32", "fp16", "bf16"]) if cuda else dict(
        budget_s=50.0, resolution=128, batch_resolution=64, batches=[1, 2], iters=2, batch_iters=1, warmup=1,
        animate_precisions=["fp32"], graph_precisions=[])
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for name in ("resolution", "batch_resolution", "iters", "batch_iters"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.budget_s <= 0 or any(b < 1 for b in args.batches):
        p.error("--warmup must be >= 0, --budget-s > 0 and every --batches value >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check = GpuCheck(args)
    data = check.run()
    failed = [s["name"] for s in data["sections"] if s["status"] == "failed"]
    print(f"[gpu_check] {data['label']}: report in {Path(args.out) / 'report.md'} ({data['elapsed_s']:.1f} s)"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
