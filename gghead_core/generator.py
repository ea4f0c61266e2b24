"""The GGHead generator: z -> ws -> UV feature planes -> sampled per-Gaussian attributes -> Gaussians.

Follows spec section 3 step by step; each step is a public method so tests (and curious users) can compare the
intermediate tensors with the official ones:

``mapping`` -> ``synthesize_planes`` -> ``sample_uv`` -> ``decode_attributes`` -> ``activate``
(``synthesis`` runs the last four).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .camera import frontal_camera
from .config import SH_C0, GeneratorConfig
from .gaussians import Gaussians
from .stylegan2 import LOW_DTYPES, PRECISIONS, MappingNetwork, SynthesisNetwork, fp32_precision


@dataclass
class ModelSpaceAttributes:
    """Per-Gaussian attributes as the official model stores them in its GaussianModel (before activation).

    position ``[B,G,3]`` world space; log_scale ``[B,G,3]``; rotation ``[B,G,4]`` (quirk-ordered quaternion);
    color ``[B,G,K*3]`` SH coefficients, coefficient-major; opacity_logit ``[B,G,1]``.
    """

    position: torch.Tensor
    log_scale: torch.Tensor
    rotation: torch.Tensor
    color: torch.Tensor
    opacity_logit: torch.Tensor


def _last_dim_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over a short last dimension (3 or 4), ``[..., 1]``.

    Written as the explicit sum of squared slices: torch's generic norm / ``F.normalize`` reduce a last
    dimension of 3-4 slowly on the CPU (measured ~20 ms for 235k quaternions vs < 1 ms this way).
    """
    total = x[..., 0:1].square()
    for i in range(1, x.shape[-1]):
        total = total + x[..., i : i + 1].square()
    return total.sqrt()


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> unit quaternion ``[..., 4]`` real part first, with the small-angle series."""
    angle = _last_dim_norm(axis_angle)
    half = 0.5 * angle
    small = angle.abs() < 1e-6
    safe_angle = torch.where(small, torch.ones_like(angle), angle)
    k = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / safe_angle)
    return torch.cat([torch.cos(half), axis_angle * k], dim=-1)


def mip_sigmoid(x: torch.Tensor, overshoot: float, clamp: bool = False) -> torch.Tensor:
    """``sigmoid(x) * (1 + 2 o) - o``: lets the network reach exactly 0 and 1 (GGHead's opacity activation)."""
    y = torch.sigmoid(x) * (1 + 2 * overshoot) - overshoot
    return y.clamp(0, 1) if clamp else y


def mip_tanh(x: torch.Tensor, overshoot: float) -> torch.Tensor:
    return torch.tanh(x) * (1 + 2 * overshoot) - overshoot


def placeholder_uv_template(num_side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A full-square UV grid on a unit-ish sphere cap: used only to build randomly initialised generators.

    Returns ``uv_grid [1, n*n, 1, 2]``, ``uv_position_map [3, n, n]``, ``template_points [1, n*n, 3]``.
    Real checkpoints carry their own template buffers.
    """
    t = torch.linspace(-1, 1, num_side)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    grid = torch.stack([xx, yy], dim=-1).reshape(1, -1, 1, 2)
    lon, lat = xx * (math.pi / 2), -yy * (math.pi / 2.2)
    points = torch.stack([0.3 * torch.sin(lon) * torch.cos(lat), 0.4 * torch.sin(lat),
                          0.3 * torch.cos(lon) * torch.cos(lat)], dim=-1)
    return grid, points.permute(2, 0, 1).contiguous(), points.reshape(1, -1, 3)


class _Backbone(nn.Module):
    """Container with the official names ``backbone.mapping`` / ``backbone.synthesis``."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.synthesis = SynthesisNetwork(config, img_channels=config.n_uv_channels)
        self.mapping = MappingNetwork(config, num_ws=self.synthesis.num_ws)


class Generator(nn.Module):
    """GGHead generator in plain PyTorch. ``Generator(config)`` has random weights; use
    :func:`gghead_core.load_generator` for trained ones.

    Buffers (official names): ``_uv_grid [1,G,1,2]`` grid_sample coordinates of each Gaussian in UV space,
    ``_uv_position_map [3,R,R]`` template position per texel, ``_flame_vertices [1,G,3]`` template point per
    Gaussian (the centre its position offset is added to).
    """

    # Buffers, declared so the type checker does not read them as Tensor | Module.
    _uv_grid: torch.Tensor  # [1, G, 1, 2]
    _uv_position_map: torch.Tensor  # [3, R, R]
    _flame_vertices: torch.Tensor  # [1, G, 3]

    def __init__(self, config: GeneratorConfig, uv_grid: torch.Tensor | None = None,
                 uv_position_map: torch.Tensor | None = None, template_points: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = _Backbone(config)
        if config.use_zero_conv_position:
            zero_conv = nn.Conv2d(3, 3, 1)  # bias=True (the official layer has one)
            nn.init.zeros_(zero_conv.weight)
            if zero_conv.bias is not None:  # always set with bias=True; the check narrows Conv2d's Optional bias
                nn.init.zeros_(zero_conv.bias)
            self._zero_conv_position = zero_conv
        if uv_grid is None:
            uv_grid, uv_position_map, template_points = placeholder_uv_template(
                config.n_uniform_flame_vertices or config.plane_resolution)
        if uv_position_map is None or template_points is None:
            raise ValueError("uv_grid, uv_position_map and template_points go together: give all three or none")
        self.register_buffer("_uv_grid", uv_grid.to(torch.float32).contiguous())
        self.register_buffer("_uv_position_map", uv_position_map.to(torch.float32).contiguous())
        self.register_buffer("_flame_vertices", template_points.to(torch.float32).contiguous())
        if self._uv_grid.shape[1] != self._flame_vertices.shape[1]:
            raise ValueError("_uv_grid and _flame_vertices disagree on the number of Gaussians")
        self.checkpoint_path: Path | None = None
        self._checkpoint_sha256: str | None = None
        self._label_cache: dict[torch.device, torch.Tensor] = {}  # frontal label [25] per device

    # ---- facts -------------------------------------------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def w_dim(self) -> int:
        return self.config.w_dim

    @property
    def c_dim(self) -> int:
        return self.config.c_dim

    @property
    def num_ws(self) -> int:
        return self.backbone.mapping.num_ws

    @property
    def num_gaussians(self) -> int:
        return int(self._uv_grid.shape[1])

    @property
    def sh_degree(self) -> int:
        return self.config.sh_degree

    @property
    def plane_resolution(self) -> int:
        return self.config.plane_resolution

    @property
    def w_avg(self) -> torch.Tensor:
        return self.backbone.mapping.w_avg

    @property
    def device(self) -> torch.device:
        return self._uv_grid.device

    @property
    def checkpoint_sha256(self) -> str:
        """sha256 of the file this generator was loaded from ('' when it was not loaded from a file)."""
        if self._checkpoint_sha256 is None:
            if self.checkpoint_path is None:
                return ""
            digest = hashlib.sha256()
            with open(self.checkpoint_path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            self._checkpoint_sha256 = digest.hexdigest()
        return self._checkpoint_sha256

    # ---- latents -----------------------------------------------------------------------------------------------
    def z_from_seed(self, seed: int) -> torch.Tensor:
        """``[1, z_dim]`` latent of the official scripts' convention on a CPU generator (spec 4.7)."""
        z = torch.randn(1, self.z_dim, generator=torch.Generator("cpu").manual_seed(int(seed)))
        return z.to(self.device)

    def default_label(self, batch_size: int = 1) -> torch.Tensor:
        """Frontal camera label at radius 2.7 (the official notebook's conditioning), ``[B, 25]``.

        Kept per device: on CUDA a fresh CPU label would be a blocking host-to-device copy on every call.
        """
        device = self.device
        label = self._label_cache.get(device)
        if label is None:
            label = self._label_cache[device] = frontal_camera().label().to(device)
        return label.unsqueeze(0).expand(batch_size, -1).clone()

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        """z ``[B, z_dim]`` (+ label c ``[B, 25]``, default frontal) -> ws ``[B, num_ws, w_dim]``."""
        z = z.to(self.device)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [B, {self.z_dim}], got {tuple(z.shape)}")
        if truncation_cutoff is not None and not 0 <= int(truncation_cutoff) <= self.num_ws:
            raise ValueError(f"truncation_cutoff must be in [0, {self.num_ws}], got {truncation_cutoff}")
        if not math.isfinite(float(truncation_psi)):
            raise ValueError(f"truncation_psi must be finite, got {truncation_psi}")
        if c is None:
            c = self.default_label(z.shape[0])
        c = c.to(self.device, torch.float32)
        if c.dim() == 1:
            c = c.unsqueeze(0).repeat(z.shape[0], 1)
        if c.shape != (z.shape[0], self.c_dim):
            raise ValueError(f"camera label must have shape [{z.shape[0]}, {self.c_dim}], got {tuple(c.shape)}")
        if self.config.c_gen_conditioning_zero:
            c = torch.zeros_like(c)
        with fp32_precision(z.device, allow_tf32=False):
            return self.backbone.mapping(z, c * self.config.c_scale, truncation_psi=float(truncation_psi),
                                         truncation_cutoff=None if truncation_cutoff is None
                                         else int(truncation_cutoff))

    # ---- synthesis, step by step -------------------------------------------------------------------------------
    def synthesize_planes(self, ws: torch.Tensor, noise_mode: str = "const",
                          num_fp16_res: int | None = None, *, precision: str | None = None,
                          allow_tf32: bool = False) -> torch.Tensor:
        """ws -> UV feature planes ``[B, C_uv, R_p, R_p]`` (float32 whatever the blocks ran in).

        ``num_fp16_res``: run the N highest-resolution blocks in float16 (None: the checkpoint's setting, which
        the official code applies on CUDA only).

        ``precision`` (keyword-only; None keeps the behaviour above):
          * ``"fp32"``: every block in float32, also on CUDA for checkpoints that ask for fp16 blocks;
          * ``"fp16"`` / ``"bf16"``: the N highest-resolution blocks in float16 / bfloat16, N =
            ``num_fp16_res`` if given, else the checkpoint's value if > 0, else 4 (the official default).
            Both work on any device; they are previews (errors against fp32 are stated in docs/gpu.md and
            tested), fp32 stays the default for exports. float16 blocks of models without ``conv_clamp``
            are clamped at 256 (see ``stylegan2.FP16_CONV_CLAMP``).

        ``allow_tf32``: on CUDA, let fp32 convolutions and matmuls use TF32 (faster on Ampere+, ~5e-3 error on
        SH). Off by default so that CUDA reproduces the CPU result; the global flags are restored afterwards.
        """
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, got {noise_mode!r}")
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or None), got {precision!r}")
        ws = ws.to(self.device)
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [B, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if precision in ("fp16", "bf16") and num_fp16_res is None:
            num_fp16_res = self.config.num_fp16_res if self.config.num_fp16_res > 0 else 4
        fp16_resolution = None
        if precision == "fp32":
            fp16_resolution = 1 << 30
        elif num_fp16_res is not None:
            fp16_resolution = 1 << 30 if num_fp16_res <= 0 else max(
                2 ** (int(math.log2(self.plane_resolution)) + 1 - int(num_fp16_res)), 8)
        low_dtype = LOW_DTYPES.get(precision or "fp16", torch.float16)
        with fp32_precision(ws.device, allow_tf32=allow_tf32):
            return self.backbone.synthesis(ws, noise_mode=noise_mode, fp16_resolution=fp16_resolution,
                                           low_dtype=low_dtype)

    def position_adjusted_planes(self, planes: torch.Tensor) -> torch.Tensor:
        """Apply the 1x1 zero-conv to the POSITION channels (spec 3.5 step 2); other channels unchanged."""
        planes = planes[:, -self.config.n_uv_channels:]
        if not self.config.use_zero_conv_position:
            return planes
        sl = self.config.attribute_slices()["POSITION"]
        position = self._zero_conv_position(planes[:, sl])
        return torch.cat([planes[:, : sl.start], position, planes[:, sl.stop:]], dim=1)

    def sample_uv(self, planes: torch.Tensor) -> torch.Tensor:
        """Planes ``[B, C_uv, R, R]`` -> raw per-Gaussian channels ``[B, G, C_uv]`` (zero-conv included)."""
        uv_map = self.position_adjusted_planes(planes)
        grid = self._uv_grid.to(uv_map.dtype).repeat(uv_map.shape[0], 1, 1, 1)
        sampled = F.grid_sample(uv_map, grid, mode=self.config.interpolation_mode, padding_mode="zeros",
                                align_corners=self.config.use_align_corners)  # [B, C_uv, G, 1]
        return sampled.squeeze(3).permute(0, 2, 1)

    def split_raw(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``[B, G, C_uv]`` into the five attributes in ``uv_attributes`` order."""
        return {name: raw[..., sl] for name, sl in self.config.attribute_slices().items()}

    def decode_attributes(self, raw: torch.Tensor) -> ModelSpaceAttributes:
        """Raw sampled channels -> the model-space attributes of spec 3.6 (what the official GaussianModel holds)."""
        cfg, parts = self.config, self.split_raw(raw)
        # position: template point + bounded offset
        offset = parts["POSITION"]
        if cfg.use_position_activation:
            offset = cfg.position_range * torch.tanh(cfg.position_attenuation * offset)
        else:
            offset = cfg.position_attenuation * offset
        position = self._flame_vertices.to(offset.dtype) + offset
        # scale: a log-scale kept below max_scale by a softplus
        v = -(parts["SCALE"] + cfg.scale_offset)
        log_scale = cfg.max_scale - F.softplus(v + cfg.max_scale if cfg.center_scale_activation else v)
        # rotation
        rot = parts["ROTATION"]
        if cfg.use_rodriguez_rotation:
            if cfg.use_rotation_activation:
                rot = torch.tanh(cfg.rotation_attenuation * rot) * (2 * math.pi)
            q = axis_angle_to_quaternion(rot)
            # Official quirk (spec 3.6.3): the last component is moved to the front. The network was trained
            # through this mapping, so it is reproduced literally.
            rot = torch.cat([q[..., 3:4], q[..., :3]], dim=-1)
        elif cfg.normalize_quaternions:
            rot = rot / rot.norm(dim=2, keepdim=True)
        rot = rot.contiguous()
        # colour: SH coefficients bounded to about +-1.78
        color = parts["COLOR"]
        if cfg.use_color_activation:
            color = mip_tanh(color, cfg.color_overshoot) * (0.5 / SH_C0)
        return ModelSpaceAttributes(position=position, log_scale=log_scale, rotation=rot, color=color,
                                    opacity_logit=parts["OPACITY"])

    def activate(self, attrs: ModelSpaceAttributes) -> Gaussians:
        """Model-space attributes -> the values handed to the rasterizer (spec 3.7)."""
        cfg = self.config
        if cfg.no_exp_scale_activation:
            scales = mip_sigmoid(attrs.log_scale + math.exp(cfg.scale_offset), cfg.scale_overshoot) * math.exp(
                cfg.max_scale)
        else:
            scales = torch.exp(attrs.log_scale)
        quats = attrs.rotation / _last_dim_norm(attrs.rotation).clamp_min(1e-12)  # = F.normalize(eps=1e-12)
        opacities = mip_sigmoid(attrs.opacity_logit, cfg.opacity_overshoot, cfg.clamp_opacity).squeeze(-1)
        b, g = attrs.color.shape[:2]
        sh = attrs.color.reshape(b, g, cfg.num_sh_coefficients, cfg.n_color_channels)
        return Gaussians(means=attrs.position, quats=quats, scales=scales, opacities=opacities, sh=sh)

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const", num_fp16_res: int | None = None, *,
                  precision: str | None = None, allow_tf32: bool = False) -> Gaussians:
        """ws ``[B, num_ws, w_dim]`` -> :class:`Gaussians` (batched, activated, float32).

        ``precision`` and ``allow_tf32``: see :meth:`synthesize_planes` (defaults keep fp32 exact).
        """
        with fp32_precision(self.device, allow_tf32=allow_tf32):  # also covers the zero-conv in sample_uv
            planes = self.synthesize_planes(ws, noise_mode=noise_mode, num_fp16_res=num_fp16_res,
                                            precision=precision, allow_tf32=allow_tf32)
            return self.activate(self.decode_attributes(self.sample_uv(planes.to(torch.float32))))

    def graphed(self, batch_size: int = 1, *, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                precision: str | None = None, warmup: int = 3) -> GraphedGenerator:
        """z -> Gaussians replayed from a CUDA graph (one launch instead of hundreds; CUDA only).

        The speed option of issue 11 for the animate path: at batch 1 the eager generator is bound by kernel
        launches and Python, not by the GPU. The graph is captured for a fixed batch size, truncation,
        precision and ``noise_mode="const"``; call the result with ``z [batch_size, z_dim]``. The returned
        :class:`Gaussians` are views of static buffers that the next call overwrites: clone them to keep them.
        Changing the weights afterwards (in place) is not seen by the graph's cached weight statistics;
        build a new graph after loading other weights.
        """
        return GraphedGenerator(self, batch_size, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                precision=precision, warmup=warmup)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> Gaussians:
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode=noise_mode)


class GraphedGenerator:
    """A captured CUDA graph of ``mapping`` + ``synthesis`` for fixed settings (see :meth:`Generator.graphed`)."""

    def __init__(self, G: Generator, batch_size: int, *, truncation_psi: float, truncation_cutoff: int | None,
                 precision: str | None, warmup: int) -> None:
        if G.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the generator on a CUDA device, it is on {G.device}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.generator, self.batch_size = G, batch_size
        self._z = torch.zeros(batch_size, G.z_dim, device=G.device)  # [B, z_dim] static input

        def step() -> Gaussians:
            ws = G.mapping(self._z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
            return G.synthesis(ws, precision=precision)

        # Warm up on a side stream (cuDNN picks its algorithms, caches fill), then capture.
        side = torch.cuda.Stream(device=G.device)
        side.wait_stream(torch.cuda.current_stream(G.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(max(1, warmup)):
                step()
        torch.cuda.current_stream(G.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self._out = step()

    def __call__(self, z: torch.Tensor) -> Gaussians:
        """``z [batch_size, z_dim]`` -> Gaussians (static buffers, overwritten by the next call)."""
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if tuple(z.shape) != tuple(self._z.shape):
            raise ValueError(f"this graph was captured for z of shape {tuple(self._z.shape)}, got {tuple(z.shape)}")
        self._z.copy_(z, non_blocking=True)
        self.graph.replay()
        return self._out
