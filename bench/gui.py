"""Benchmark: frames per second the viewer actually displays, under a real DearPyGui window.

    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/gui.py [--ckpt PATH] [--seconds 8] [--resolutions 512 1024]

Rows per render resolution:

* ``idle``: nothing changes; DearPyGui still re-uploads and draws the raw texture every frame, so its "UI fps"
  is the ceiling this machine's GL (llvmpipe under Xvfb here) allows for the window;
* ``display only``: pre-rendered frames pushed through the worker and the raw-texture path (the cost of
  showing a frame: copy into the display buffer + pointer swap + DearPyGui upload/draw), i.e. the ceiling the
  display path allows;
* ``orbit``: the camera yaws a little every UI frame (Gaussians cached, only rasterization runs);
* ``animate``: the latent interpolation slider moves every UI frame (mapping + synthesis + raster per frame).

"displayed fps" counts new frames that reached the texture; "UI fps" counts DearPyGui frames (responsiveness
while the worker is busy). Stage columns are medians over the displayed frames. The model is the bundled demo
model when present, else the official-format fixture in ../shared (a small head), else ``--ckpt``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

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


def measure(viewer, scenario: str, seconds: float) -> dict:
    """Drive the viewer for ``seconds`` and collect displayed/UI fps and stage medians."""
    v = viewer
    v.wait(120)
    shown0, frames, t0 = v.frames_shown, 0, time.perf_counter()
    stages: dict[str, list[float]] = {"mapping": [], "synthesis": [], "raster": [], "upload": []}
    last_id = v.last_result.request_id if v.last_result is not None else -1  # count only frames made here
    yaw = 0.0
    while time.perf_counter() - t0 < seconds:
        if scenario in ("orbit", "display only"):
            yaw = (yaw + 2.0) % 90.0
            v.camera.set(yaw_deg=yaw - 45.0)
        elif scenario == "animate":
            v.latent.set_t((time.perf_counter() - t0) / 4.0 % 1.0)
        v.step()
        frames += 1
        r = v.last_result
        if r is not None and r.request_id != last_id and r.error is None:
            last_id = r.request_id
            t = r.timings
            if not t.cached and scenario != "display only":
                stages["mapping"].append(t.mapping_ms)
                stages["synthesis"].append(t.synthesis_ms)
            stages["raster"].append(t.raster_ms)
            stages["upload"].append(t.upload_ms)
    elapsed = time.perf_counter() - t0
    med = {k: (statistics.median(x) if x else float("nan")) for k, x in stages.items()}
    r = v.last_result
    backend = "-" if r is None else (f"ERROR {r.error}" if r.error else r.backend)
    if scenario == "idle":
        backend = "- (no new frames)"
    if r is not None and r.error:
        print(f"  render failed: {r.error}", file=sys.stderr)
    return dict(displayed=(v.frames_shown - shown0) / elapsed, ui=frames / elapsed, backend=backend, **med)


def prerendered(resolution: int):
    """A render function that returns one of a few prepared images (no rasterization cost)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(1, resolution, resolution, 3, generator=gen) for _ in range(4)]
    counter = {"n": 0}

    def render(gaussians, camera, resolution=resolution, **kwargs):  # noqa: ANN001, ANN202
        counter["n"] += 1
        return SimpleNamespace(image=images[counter["n"] % 4], backend="none (pre-rendered)", backend_reason="")

    return render


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--scenarios", nargs="+", default=["idle", "display only", "orbit", "animate"])
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
    os.environ.setdefault("XDG_CONFIG_HOME", tmp)
    rows = []
    # One window for every row: DearPyGui should not be re-created in one process (see tests/test_gui_viewer.py).
    v = Viewer(ckpt, resolution=opts.resolutions[0], backend=opts.backend, output_dir=tmp, width=1600, height=1100,
               vsync=False, torch_threads=opts.torch_threads)
    v.start()
    try:
        if not v.wait(300):
            raise SystemExit(f"viewer did not start: {v.status} {v.model.error}")
        n_gaussians = v.model.info.num_gaussians
        threads = torch.get_num_threads()
        real_render = v.worker.render_fn
        for res in opts.resolutions:
            v.render.set_resolution(res)
            for scenario in opts.scenarios:
                v.worker.render_fn = prerendered(res) if scenario in ("display only", "idle") else real_render
                v.camera.reset()
                v.latent.set_t(0.0)
                rows.append(dict(res=res, scenario=scenario, **measure(v, scenario, opts.seconds)))
                r = rows[-1]
                print(f"  {res} {scenario}: {r['displayed']:.1f} displayed fps, {r['ui']:.1f} UI fps", file=sys.stderr)
        if opts.screenshot:
            v.worker.render_fn = real_render
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
    print(f"\nGGHead viewer, displayed frames per second ({device}; model {ckpt or 'demo'}, {n_gaussians:,} Gaussians;"
          f" {opts.seconds:.0f} s per row; DISPLAY={os.environ.get('DISPLAY')})\n")
    head = f"| {'res':>4} | {'scenario':<12} | {'backend':<20} | {'displayed fps':>13} | {'UI fps':>6} | " \
           f"{'mapping ms':>10} | {'synthesis ms':>12} | {'raster ms':>9} | {'upload ms':>9} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        def f(x):  # noqa: ANN001, ANN202
            return "-" if x != x else f"{x:.1f}"

        def g(x):  # noqa: ANN001, ANN202
            return "-" if x != x else f"{x:.2f}"

        print(f"| {r['res']:>4} | {r['scenario']:<12} | {r['backend'][:20]:<20} | {r['displayed']:>13.1f} | {r['ui']:>6.1f} | "
              f"{f(r['mapping']):>10} | {f(r['synthesis']):>12} | {f(r['raster']):>9} | {g(r['upload']):>9} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
