"""Train the bundled demo generator: ``python -m gghead_core.demo.train_demo``.

The demo model is a small generator in the official GGHead architecture (mapping network, StyleGAN2 synthesis
of UV planes, UV sampling, the official attribute decoding) trained by plain regression to reproduce the
procedural head family of :mod:`gghead_core.demo.heads`: for random latents ``z`` the target is the head of
``params_from_z(z)``, compared per texel after decoding (offsets, log-scales, rotations, colours, opacity),
each attribute scaled by the error that is just visible. No GAN, no renderer in the loop: the targets are
exact, so the model converges in minutes on a CPU.

After training, ``w_avg`` is set to the mean of the mapping outputs over many latents, so truncation moves a
head toward the family's average head, and the result is written with our ``.safetensors`` writer
(``checkpoints/demo.safetensors`` by default; ``--overwrite`` to replace it). ``--save-every N`` also writes it every
N steps, so a run cut short still leaves a usable model; ``--init OLD.safetensors`` starts from an earlier demo
model's network (same architecture; the template buffers always come from the current template), which is how the
bundled model was made after the template was closed (see the README).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoint import DEMO_CHECKPOINT, save_safetensors
from ..config import SH_C0, GeneratorConfig
from ..generator import Generator
from . import heads as H


def demo_config() -> GeneratorConfig:
    """The demo generator: official decoding and architecture, small enough for real time on a CPU."""
    return GeneratorConfig(
        z_dim=32,
        w_dim=128,
        c_dim=25,
        c_gen_conditioning_zero=True,  # one head per latent, whatever camera label a caller passes
        mapping_num_layers=2,
        channel_base=2048,
        channel_max=128,
        plane_resolution=128,
        sh_degree=1,
        n_uniform_flame_vertices=256,
        use_zero_conv_position=True,
        position_range=0.25,
        position_attenuation=1.0,
        rotation_attenuation=1.0,
        neural_rendering_resolution=512,
        template="demo: procedural closed head (assets/head_template.obj)",
    )


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 6000
    batch_size: int = 4
    lr: float = 5e-3
    mapping_lr_boost: float = 10.0  # the mapping's 0.01 lr multiplier makes it learn 100x slower otherwise
    seed: int = 0
    threads: int = 1  # measured: 2 threads on this shared 2-core box spin-wait and run 5x slower
    w_avg_samples: int = 20000
    save_every: int = 0  # also write the checkpoint every N steps (0: only at the end), so a cut run leaves a model
    init: Path | None = None  # warm start: network weights of an earlier demo checkpoint (same architecture)


TORGB_INIT_SCALE = 0.05

# Error at which each decoded attribute starts to be visible; the loss is the mean squared error in these units.
TOLERANCES = {
    "rgb": 0.02, "rgb_edges": 0.02, "sh_rest": 0.05, "offset": 0.004, "log_scale": 0.15, "axis_angle": 0.08,
    "opacity": 0.03,
}


def regression_loss(
    planes: torch.Tensor, G: Generator, targets: H.HeadAttributes, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked, tolerance-scaled squared error between decoded ``planes`` and the target attributes."""
    dec = H.decode_planes(G.position_adjusted_planes(planes), G.config)
    rgb = 0.5 + SH_C0 * dec["color"][:, :3]
    terms = {
        "rgb": rgb - targets.rgb,
        "sh_rest": dec["color"][:, 3:],
        "offset": dec["offset"] - targets.offset,
        "log_scale": dec["log_scale"] - targets.log_scale,
        "axis_angle": dec["axis_angle"] - targets.axis_angle,
        "opacity": dec["opacity"] - targets.opacity,
    }
    norm = mask.sum() * planes.shape[0]
    parts = {k: ((v / TOLERANCES[k]) ** 2 * mask).sum() / (norm * v.shape[1]) for k, v in terms.items()}
    # Colour differences between neighbouring texels: weighs the edges of eyes, brows and lips, which a plain
    # per-texel error lets the model blur.
    d = terms["rgb"]
    tol = TOLERANCES["rgb_edges"]
    edge_x = ((d[..., :, 1:] - d[..., :, :-1]) / tol) ** 2 * torch.minimum(mask[..., :, 1:], mask[..., :, :-1])
    edge_y = ((d[..., 1:, :] - d[..., :-1, :]) / tol) ** 2 * torch.minimum(mask[..., 1:, :], mask[..., :-1, :])
    parts["rgb_edges"] = (edge_x.sum() + edge_y.sum()) / (norm * 3)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _initialise(G: Generator, tpl: H.HeadTemplate, generator: torch.Generator) -> None:
    """Start near the answer: identity zero-conv, and the last ToRGB bias at the mean raw target."""
    with torch.no_grad():
        if G.config.use_zero_conv_position:
            G._zero_conv_position.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
            G._zero_conv_position.bias.zero_()
        z = torch.randn(16, G.z_dim, generator=generator)
        raw = H.encode_raw(H.head_attributes(H.params_from_z(z), tpl), G.config)  # [16, C, R, R]
        m = tpl.loss_mask
        mean_raw = (raw * m).sum(dim=(0, 2, 3)) / (m.sum() * raw.shape[0])
        blocks = G.backbone.synthesis.blocks()
        for block in blocks:  # moderate initial outputs: no saturated tanh, and still quick to grow
            block.torgb.weight.mul_(TORGB_INIT_SCALE)
        blocks[-1].torgb.bias.copy_(mean_raw)


FACE_WEIGHT = 4.0
FEATURE_WEIGHT = 12.0


def loss_weights(tpl: H.HeadTemplate) -> torch.Tensor:
    """Per-texel loss weights ``[R, R]``: the texels Gaussians read, the face counted ``FACE_WEIGHT`` times and
    the eyes, brows and lips ``FEATURE_WEIGHT`` times.

    Eyes, brows and lips are small in UV space but decide whether a head is recognisable and looks sharp; a
    plain per-texel error lets the model blur them into the skin around.
    """
    az, el = tpl.az, tpl.el
    face = H._band(el, -0.85, 0.32, 0.08) * H._sstep(0.8, 0.6, az.abs())
    eyes = sum(torch.exp(-0.5 * (((az - s * 0.345) / 0.17) ** 2 + ((el - 0.1) / 0.12) ** 2)) for s in (-1.0, 1.0))
    lips = torch.exp(-0.5 * ((az / 0.3) ** 2 + ((el + 0.62) / 0.09) ** 2))
    features = (eyes + lips).clamp(max=1.0)
    return tpl.loss_mask * (1.0 + (FACE_WEIGHT - 1.0) * face + (FEATURE_WEIGHT - FACE_WEIGHT) * features)


def warm_start(G: Generator, path: Path) -> int:
    """Copy the network weights (mapping, synthesis, zero-conv) of the checkpoint at ``path`` into ``G``.

    The template buffers are not copied: they come from the current template. Returns the number of tensors
    copied; raises ``ValueError`` when the architectures differ.
    """
    from ..checkpoint import load_generator

    src = load_generator(path).state_dict()
    dst = G.state_dict()
    skip = {"_uv_grid", "_uv_position_map", "_flame_vertices"}
    copied = 0
    with torch.no_grad():
        for name, value in dst.items():
            if name in skip or name.split(".")[-1] in skip:
                continue
            if name not in src or src[name].shape != value.shape:
                raise ValueError(f"--init {path}: tensor {name} is missing or has another shape")
            value.copy_(src[name])
            copied += 1
    return copied


def _save(G: Generator, out: Path, settings: TrainSettings, overwrite: bool, log, note: str) -> None:
    """An intermediate checkpoint: ``w_avg`` from fewer latents (its own RNG: the training stream is untouched)."""
    G.eval()
    set_w_avg(G, min(settings.w_avg_samples, 4000), torch.Generator("cpu").manual_seed(settings.seed + 1))
    save_safetensors(G, out, overwrite=overwrite)
    G.train()
    log(f"wrote {out} ({note})")


@torch.no_grad()
def set_w_avg(G: Generator, samples: int, generator: torch.Generator) -> None:
    """``w_avg`` = mean mapping output over ``samples`` latents (no truncation)."""
    total = torch.zeros(G.w_dim)
    done = 0
    while done < samples:
        n = min(2000, samples - done)
        z = torch.randn(n, G.z_dim, generator=generator)
        total += G.mapping(z)[:, 0].sum(dim=0)
        done += n
    G.backbone.mapping.w_avg.copy_(total / samples)


def train(settings: TrainSettings, out: Path | None, overwrite: bool = False, log=print, log_every: int = 0,
          config: GeneratorConfig | None = None) -> dict[str, float]:
    """Train from scratch; write ``out`` (unless None). Returns the training time and the final loss terms.

    ``config`` defaults to :func:`demo_config` (tests pass a tiny one).
    """
    config = demo_config() if config is None else config
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _train(settings, config, out, overwrite, log, log_every)
    finally:
        torch.set_num_threads(threads)


def _train(settings: TrainSettings, config: GeneratorConfig, out: Path | None, overwrite: bool, log,
           log_every: int) -> dict[str, float]:
    torch.set_flush_denormal(True)
    torch.manual_seed(settings.seed)
    rng = torch.Generator("cpu").manual_seed(settings.seed)
    tpl = H.build_head_template(config.plane_resolution, config.n_uniform_flame_vertices)
    G = Generator(config, tpl.uv_grid, tpl.uv_position_map, tpl.template_points).train()
    _initialise(G, tpl, rng)
    if settings.init is not None:
        log(f"warm start from {settings.init}: {warm_start(G, settings.init)} tensors")
    mapping = [p for n, p in G.named_parameters() if n.startswith("backbone.mapping.")]
    others = [p for n, p in G.named_parameters() if not n.startswith("backbone.mapping.")]
    opt = torch.optim.Adam(
        [{"params": others, "lr": settings.lr}, {"params": mapping, "lr": settings.lr * settings.mapping_lr_boost}],
        betas=(0.9, 0.99),
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    mask = loss_weights(tpl)[None, None]
    log(f"demo generator: {sum(p.numel() for p in G.parameters()) / 1e6:.2f}M parameters, "
        f"{G.num_gaussians} Gaussians, planes {config.n_uv_channels}x{config.plane_resolution}^2")

    start = time.perf_counter()
    ema = None
    saved = False  # an intermediate checkpoint of this run is at ``out`` (ours to replace)
    bar = tqdm(range(settings.steps), desc="training demo", unit="step", dynamic_ncols=True)
    for step in bar:
        warm = min(1.0, (step + 1) / 100)
        decay = 0.5 * (1 + math.cos(math.pi * step / settings.steps))  # cosine to zero
        for group, lr in zip(opt.param_groups, base_lrs):
            group["lr"] = lr * warm * (0.02 + 0.98 * decay)
        z = torch.randn(settings.batch_size, config.z_dim, generator=rng)
        with torch.no_grad():
            targets = H.head_attributes(H.params_from_z(z), tpl)
        planes = G.synthesize_planes(G.mapping(z), noise_mode="const")
        loss, parts = regression_loss(planes, G, targets, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if step % 10 == 0:
            bar.set_postfix(loss=f"{ema:.3f}", rgb=f"{parts['rgb']:.3f}", off=f"{parts['offset']:.3f}")
        if log_every and step % log_every == 0:
            log(f"step {step}: loss {value:.4f} (ema {ema:.4f}) " + " ".join(f"{k} {v:.4f}" for k, v in parts.items())
                + f" [{time.perf_counter() - start:.0f}s]")
        if out is not None and settings.save_every and (step + 1) % settings.save_every == 0 and step + 1 < settings.steps:
            _save(G, out, settings, overwrite=overwrite or saved, log=log, note=f"step {step + 1}/{settings.steps}")
            saved = True
    train_seconds = time.perf_counter() - start

    G.eval()
    set_w_avg(G, settings.w_avg_samples, rng)
    # Final loss on fresh latents (const noise, eval mode), for the record.
    eval_rng = torch.Generator("cpu").manual_seed(12345)
    with torch.no_grad():
        totals: dict[str, float] = {}
        n_eval = 4
        for _ in range(n_eval):
            z = torch.randn(4, config.z_dim, generator=eval_rng)
            targets = H.head_attributes(H.params_from_z(z), tpl)
            loss, parts = regression_loss(G.synthesize_planes(G.mapping(z)), G, targets, mask)
            for k, v in {"total": float(loss), **parts}.items():
                totals[k] = totals.get(k, 0.0) + v / n_eval
    log(f"trained {settings.steps} steps x {settings.batch_size} in {train_seconds / 60:.1f} min; final loss "
        + ", ".join(f"{k} {v:.4f}" for k, v in totals.items()))
    if out is not None:
        save_safetensors(G.requires_grad_(False), out, overwrite=overwrite or saved)
        log(f"wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB)")
    return {"train_seconds": train_seconds, **totals}


def main(argv: list[str] | None = None) -> int:
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(description="Train the bundled demo generator (CPU, plain regression).")
    parser.add_argument("--out", type=Path, default=DEMO_CHECKPOINT, help="output .safetensors file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--log-every", type=int, default=250, help="print the loss every N steps (0: never)")
    parser.add_argument("--save-every", type=int, default=0,
                        help="also write the checkpoint every N steps (0: only at the end)")
    parser.add_argument("--init", type=Path, default=None,
                        help="warm start from the network weights of an earlier demo checkpoint")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.batch_size <= 0 or not args.lr > 0 or args.threads <= 0 or args.save_every < 0:
        print("error: --steps, --batch-size, --lr and --threads must be positive, --save-every >= 0", file=sys.stderr)
        return 2
    if args.init is not None and not args.init.is_file():
        print(f"error: --init {args.init}: no such file", file=sys.stderr)
        return 2
    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out} already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    if args.out.suffix != ".safetensors":
        print(f"error: {args.out}: output must end in .safetensors", file=sys.stderr)
        return 2
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             threads=args.threads, save_every=args.save_every, init=args.init)
    train(settings, args.out, overwrite=args.overwrite, log=lambda msg: tqdm.write(msg), log_every=args.log_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
