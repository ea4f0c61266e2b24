"""Benchmark: how the viewer feels under a real DearPyGui window (what a user sees, not what a kernel costs).

    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/gui.py [--ckpt PATH] [--resolution 1024]
        [--seconds 10] [--idle-seconds 20] [--memory-minutes 4] [--screenshot PATH]

Rows (one window, the real frame loop ``Viewer.tick()``; builds without it fall back to ``step()``, which is
what their ``run()`` did):

* ``orbit``: the camera yaws a little every UI frame, as a drag does (Gaussians cached, only rasterization);
* ``animate``: the Animate checkbox runs (mapping + synthesis + raster per displayed frame);
* ``refine``: after an orbit stops, seconds until the frame at the chosen resolution is on screen;
* ``idle``: nothing changes for ``--idle-seconds``: the process's CPU time (all threads: UI, worker, GL
  driver) as a percentage of one core, and how many UI frames were drawn;
* ``memory``: Animate for ``--memory-minutes``; RSS after a 30 s warm-up, at the end, the slope, and the
  growth extrapolated to 20 minutes (a straight line through the samples: honest only as a trend).

"displayed fps" counts new frames that reached the texture. The progressive preview (when the build has it) is
on, as for a user. The model is the bundled demo model when present, else the official-format fixture in
../shared, else ``--ckpt``. Load average is printed with the table: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# As main.py does for the viewer: busy-waiting OpenMP threads would fight the UI thread and the GL driver.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIXTURE = REPO.parent / "shared" / "fixtures" / "gghead_official_small" / "checkpoint.pkl"
DEMO = REPO / "checkpoints" / "demo.safetensors"


def pick_checkpoint(arg: str | None) -> str | None:
    if arg:
        return arg
    if DEMO.is_file():
        return None
    if FIXTURE.is_file():
        return str(FIXTURE)
    raise SystemExit("no model: pass --ckpt (neither checkpoints/demo.safetensors nor the ../shared fixture exists)")


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (the GL driver's llvmpipe threads included)."""
    t = os.times()
    return t.user + t.system


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def loop_once(v) -> bool:  # noqa: ANN001
    return v.tick() if hasattr(v, "tick") else v.step()


def shown_resolution(v) -> int:  # noqa: ANN001
    r = v.last_result
    return 0 if r is None or r.error else int(r.args.settings.resolution)


def measure_motion(v, scenario: str, seconds: float) -> dict:  # noqa: ANN001
    """Drive the real loop for ``seconds`` while orbiting or animating; displayed fps and the shown sizes."""
    v.wait(300)
    shown0, t0 = v.frames_shown, time.perf_counter()
    sizes: list[int] = []
    frame_ms: list[float] = []
    last_id = v.last_result.request_id if v.last_result is not None else -1
    if scenario == "animate":
        v.latent.set_animate(True)
    yaw = 0.0
    while time.perf_counter() - t0 < seconds:
        if scenario == "orbit":
            yaw = (yaw + 2.0) % 90.0
            v.camera.set(yaw_deg=yaw - 45.0)
        loop_once(v)
        r = v.last_result
        if r is not None and r.request_id != last_id and r.error is None:
            last_id = r.request_id
            sizes.append(int(r.args.settings.resolution))
            frame_ms.append(r.timings.total_ms)
    elapsed = time.perf_counter() - t0
    if scenario == "animate":
        v.latent.set_animate(False)
    backend = "-" if v.last_result is None else (v.last_result.backend or "-")
    return dict(
        displayed=(v.frames_shown - shown0) / elapsed,
        sizes=f"{min(sizes)}-{max(sizes)}" if sizes else "-",
        frame_ms=statistics.median(frame_ms) if frame_ms else float("nan"),
        backend=backend,
    )


def measure_refine(v, target: int, repeats: int = 3) -> float:  # noqa: ANN001
    """Median seconds from the last orbit step to the frame at ``target`` on screen."""
    times = []
    for k in range(repeats):
        v.wait(300)
        t_end = time.perf_counter() + 1.5
        yaw = -30.0 + 10 * k
        while time.perf_counter() < t_end:  # a 1.5 s drag
            yaw += 1.0
            v.camera.set(yaw_deg=yaw)
            loop_once(v)
        t_stop = time.perf_counter()
        want = v.args
        while time.perf_counter() - t_stop < 60:
            loop_once(v)
            r = v.last_result
            if r is not None and r.args == want and shown_resolution(v) == target:
                break
        times.append(time.perf_counter() - t_stop)
    return statistics.median(times)


def measure_idle(v, seconds: float) -> dict:  # noqa: ANN001
    v.wait(300)
    for _ in range(30):  # let the UI calm down (hover effects, the last upload)
        loop_once(v)
    ui0 = getattr(v, "ui_frames", None)
    shown0 = v.frames_shown
    c0, t0 = cpu_seconds(), time.perf_counter()
    loops = 0
    while time.perf_counter() - t0 < seconds:
        loop_once(v)
        loops += 1
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    ui_frames = (v.ui_frames - ui0) if ui0 is not None else loops  # old builds drew a frame per loop
    return dict(cpu_pct=100.0 * cpu / wall, ui_frames=ui_frames, new_frames=v.frames_shown - shown0, seconds=wall)


def measure_memory(v, minutes: float) -> dict:  # noqa: ANN001
    v.wait(300)
    v.latent.set_animate(True)
    t0 = time.perf_counter()
    samples: list[tuple[float, float]] = []
    next_sample = t0 + 30.0  # warm-up: caches, buffers and the allocator reach their working set
    end = t0 + 60.0 * minutes
    while time.perf_counter() < end:
        loop_once(v)
        now = time.perf_counter()
        if now >= next_sample:
            samples.append(((now - t0) / 60.0, rss_mb()))
            next_sample = now + 10.0
    v.latent.set_animate(False)
    if len(samples) < 2:
        return dict(start=float("nan"), end=float("nan"), slope=float("nan"), per20=float("nan"), minutes=minutes)
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in samples) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    print("  RSS samples (min, MB): " + " ".join(f"{x:.1f}:{y:.0f}" for x, y in samples), file=sys.stderr)
    return dict(start=ys[0], end=ys[-1], peak=max(ys), slope=slope, per20=slope * 20.0, minutes=minutes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--resolution", type=int, default=1024, help="the chosen render resolution (default 1024)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per orbit/animate row")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--memory-minutes", type=float, default=4.0, help="0 skips the memory row")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--rows", nargs="+", default=["orbit", "animate", "refine", "idle", "memory"])
    ap.add_argument("--no-progressive", action="store_true", help="full-resolution frames while moving")
    ap.add_argument("--screenshot", default=None, help="also save a PNG of the whole viewer window here")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch threads for the viewer (default: its own choice, half the cores on the CPU)")
    opts = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        print('bench/gui.py needs a display: run it under xvfb-run -a -s "-screen 0 1920x1080x24"', file=sys.stderr)
        return 2
    import tempfile

    import dearpygui.dearpygui as dpg
    import torch

    from app.viewer import Viewer

    ckpt = pick_checkpoint(opts.ckpt)
    tmp = tempfile.mkdtemp(prefix="gghead-bench-gui-")
    os.environ["XDG_CONFIG_HOME"] = tmp  # never the user's remembered settings
    res = opts.resolution
    v = Viewer(ckpt, resolution=res, backend=opts.backend, output_dir=tmp, width=1600, height=1100,
               vsync=False, torch_threads=opts.torch_threads)
    v.start()
    if opts.no_progressive and hasattr(v, "progressive"):
        v.progressive.enabled = False
    out: dict[str, dict | float] = {}
    try:
        if not v.wait(300):
            raise SystemExit(f"viewer did not start: {v.status} {v.model.error}")
        n_gaussians = v.model.info.num_gaussians
        threads = torch.get_num_threads()
        for row in opts.rows:
            v.camera.reset()
            v.latent.set_t(0.0)
            if row in ("orbit", "animate"):
                out[row] = measure_motion(v, row, opts.seconds)
                print(f"  {row}: {out[row]['displayed']:.1f} displayed fps (sizes {out[row]['sizes']}; "
                      f"load {load_average()})", file=sys.stderr)
            elif row == "refine":
                out[row] = measure_refine(v, res)
                print(f"  refine: {out[row]:.2f} s (load {load_average()})", file=sys.stderr)
            elif row == "idle":
                out[row] = measure_idle(v, opts.idle_seconds)
                print(f"  idle: {out[row]['cpu_pct']:.1f}% of a core (load {load_average()})", file=sys.stderr)
            elif row == "memory" and opts.memory_minutes > 0:
                out[row] = measure_memory(v, opts.memory_minutes)
                print(f"  memory: {out[row]} (load {load_average()})", file=sys.stderr)
        if opts.screenshot:
            v.render.set_resolution(512)
            v.latent.set_t(0.0)
            v.camera.set(yaw_deg=-25.0, pitch_deg=8.0)
            v.wait(300)
            dpg.output_frame_buffer(opts.screenshot)
            for _ in range(4):
                v.step()
            print(f"  screenshot of the viewer: {opts.screenshot}", file=sys.stderr)
    finally:
        v.close()

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores, {threads} torch threads"
    print(f"\nGGHead viewer at {res}x{res} ({device}; model {ckpt or 'demo'}, {n_gaussians:,} Gaussians; "
          f"DISPLAY={os.environ.get('DISPLAY')}; load average {load_average()})\n")
    print("| row | result | detail |")
    print("|-----|--------|--------|")
    for row in ("orbit", "animate"):
        if row in out:
            r = out[row]
            print(f"| {row} | {r['displayed']:.1f} displayed fps | frame sizes {r['sizes']}, median frame "
                  f"{r['frame_ms']:.0f} ms, backend {r['backend']} |")
    if "refine" in out:
        print(f"| full resolution after input stops | {out['refine']:.2f} s | median of 3 drags |")
    if "idle" in out:
        r = out["idle"]
        print(f"| idle CPU | {r['cpu_pct']:.1f}% of a core | over {r['seconds']:.0f} s: {r['ui_frames']} UI frames "
              f"drawn, {r['new_frames']} new images |")
    if "memory" in out:
        r = out["memory"]
        print(f"| RSS during Animate | {r['start']:.0f} -> {r['end']:.0f} MB | {r['minutes']:.1f} min, slope "
              f"{r['slope']:+.1f} MB/min, extrapolated {r['per20']:+.0f} MB per 20 min |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
