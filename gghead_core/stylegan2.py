"""StyleGAN2 mapping and synthesis networks in plain PyTorch (no custom CUDA ops, no compiler).

Written from the math in spec section 3.2-3.3. Parameter and buffer names follow the official module tree
(spec 1.9) so official checkpoints load by name: ``mapping.fc0.weight``, ``synthesis.b8.conv0.affine.bias`` ...

Equalized learning rate: weights are stored unscaled and multiplied by their gain in the forward pass, exactly as
the official layers do, so stored tensors are used as they are.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import GeneratorConfig

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
NoiseMode = str  # "const" | "random" | "none"


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (StyleGAN's pixel norm over features)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str, gain: float, clamp: float | None) -> torch.Tensor:
    """Add bias, apply the activation, multiply by gain, clamp (the order of eg3d's bias_act reference path)."""
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.dim() - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def make_fir_filter(taps: tuple[float, ...]) -> torch.Tensor:
    """Separable 2D FIR filter normalized to sum 1: ``outer(k, k) / sum(k)^2`` (``[4, 4]`` for [1,3,3,1])."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(k, k)
    return f / f.sum()


def fir_filter2d(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int, int, int], gain: float) -> torch.Tensor:
    """Pad (left, right, top, bottom) then depth-wise *convolve* with ``f * gain`` (filter flipped, as upfirdn2d)."""
    c = x.shape[1]
    x = F.pad(x, list(pad))
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)  # [C, 1, kh, kw]
    return F.conv2d(x, weight, groups=c)


def _depthwise_fir(f: torch.Tensor, channels: int, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """``[C, 1, kh, kw]`` depth-wise convolution weight of ``f * gain`` (flipped: upfirdn2d convolves)."""
    return (f * gain).flip([0, 1]).to(dtype)[None, None].expand(channels, 1, *f.shape).contiguous()


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x up-sampling of the skip image: zero insertion, pad (2, 1) per axis, FIR with gain 4 (spec 3.3).

    Computed as one depth-wise stride-2 transposed convolution (padding 1), which is the same sum without
    materialising the zero-inserted 4x image: ``conv_transpose2d(x, w, stride=2, padding=p)`` equals
    ``conv2d(zero_insert(x) padded by k-1-p, flip(w))``; with k=4, p=1 that is the (2, 1) padding of the
    spec (the trailing inserted zero plus 1). ``tests/test_stylegan2_fast.py`` compares it with the literal
    zero-insertion version.
    """
    c = x.shape[1]
    if f.shape[-1] != 4:  # the identity above is written for 4-tap filters (all official configs)
        return upsample2d_reference(x, f)
    weight = _depthwise_fir(f, c, 4.0, x.dtype).flip([2, 3])  # conv_transpose correlates with the flip
    return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=c)


def upsample2d_reference(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The literal spec version of :func:`upsample2d` (zero insertion, pad, FIR); kept as its reference."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, h, 2, w, 2)
    up[:, :, :, 0, :, 0] = x
    up = up.reshape(b, c, 2 * h, 2 * w)
    fw = f.shape[-1]
    pad0, pad1 = (fw + 1) // 2, (fw - 2) // 2  # 2, 1 for a 4-tap filter
    return fir_filter2d(up, f, (pad0, pad1, pad0, pad1), gain=4.0)


FP16_CONV_CLAMP = 256.0
"""Clamp used by float16 blocks of models that have ``conv_clamp=None``. The official training scripts pair
fp16 with ``conv_clamp=256`` (EG3D's train.py, which GGHead's training builds on, sets
``conv_clamp = 256 if g_num_fp16_res > 0 else None``; spec: "256 only if fp16 is on"); without a clamp, fp16 activations of a model
trained in fp32 can overflow to inf and the skip sum to NaN. The clamp applies to every fp16 layer's output
and to the activation entering the first fp16 block from an unclamped fp32 one (what a conv_clamp=256 model
would have clamped there). fp32 (and bf16, which has fp32's range) blocks are never clamped unless the
checkpoint says so. Refusing fp16 for these models was the alternative; clamping keeps the fp16 speed mode
usable and is what the official configs do whenever fp16 is on."""

PRECISIONS = ("fp32", "fp16", "bf16")
LOW_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@contextlib.contextmanager
def fp32_precision(device: torch.device, *, allow_tf32: bool) -> Iterator[None]:
    """On CUDA, run fp32 convolutions and matmuls in full IEEE precision unless ``allow_tf32``.

    cuDNN convolutions default to TF32 on Ampere and later, which moves GGHead's SH by ~5e-3 and breaks the
    "CUDA equals CPU" contract. The flags are process-wide, so they are set for the call and restored after.
    Uses the ``fp32_precision`` API when torch has it (2.9+; mixing it with the legacy ``allow_tf32`` flags is
    an error there), else the legacy flags.
    """
    if device.type != "cuda":
        yield
        return
    with _PRECISION_LOCK:  # the flags are process-wide: one generator call at a time sets and restores them
        with _fp32_precision_flags(allow_tf32):
            yield


_PRECISION_LOCK = threading.RLock()


@contextlib.contextmanager
def _fp32_precision_flags(allow_tf32: bool) -> Iterator[None]:
    want = "tf32" if allow_tf32 else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        matmul = torch.backends.cuda.matmul
        saved = conv.fp32_precision, matmul.fp32_precision
        conv.fp32_precision, matmul.fp32_precision = want, want
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
    else:  # pragma: no cover - torch < 2.9
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class FullyConnectedLayer(nn.Module):
    """Equalized-lr linear layer: ``y = act(x @ (W * lr/sqrt(in))^T + b * lr)``."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation, gain=LRELU_GAIN, clamp=None)


class MappingNetwork(nn.Module):
    """z (+ camera label) -> w, broadcast to ``num_ws`` rows, with truncation toward ``w_avg``."""

    w_avg: torch.Tensor  # [w_dim] buffer (declared so the type checker does not read it as Tensor | Module)

    def __init__(self, config: GeneratorConfig, num_ws: int) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = config.z_dim, config.c_dim, config.w_dim, num_ws
        embed_features = config.mapping_embed_features or config.w_dim
        layer_features = config.mapping_layer_features or config.w_dim
        if self.c_dim == 0:
            embed_features = 0
        else:
            self.embed = FullyConnectedLayer(self.c_dim, embed_features)
        features = [self.z_dim + embed_features] + [layer_features] * (config.mapping_num_layers - 1) + [self.w_dim]
        for i in range(config.mapping_num_layers):
            layer = FullyConnectedLayer(features[i], features[i + 1], activation=config.mapping_activation,
                                        lr_multiplier=config.mapping_lr_multiplier)
            setattr(self, f"fc{i}", layer)
        self.num_layers = config.mapping_num_layers
        self.register_buffer("w_avg", torch.zeros([self.w_dim]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this mapping network is conditioned on a {self.c_dim}-value camera label: c is None")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [B, num_ws, w_dim]
        if truncation_psi != 1:
            w_avg = self.w_avg.to(x.dtype)
            if truncation_cutoff is None:
                x = w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


@dataclass(frozen=True)
class WeightCache:
    """Per-call constants derived from a layer's weight ``[O, I, k, k]``, kept while the weight is unchanged.

    ``weight_sq [O, I]``: sum over the kernel of the squared weight (for demodulation);
    ``weight_t [I, O, k, k]``: contiguous transpose (the layout ``conv_transpose2d`` wants).
    """

    key: tuple
    weight_sq: torch.Tensor
    weight_t: torch.Tensor | None
    source: torch.Tensor  # an alias of the weight: keeps its memory alive, so its address cannot be reused


def weight_cache(weight: torch.Tensor, previous: WeightCache | None, *, transpose: bool) -> WeightCache | None:
    """Reuse ``previous`` while ``weight`` is the same storage at the same version, else rebuild it.

    The key is (address, in-place version, device, dtype, shape); the cache holds an alias of the weight, so
    the address cannot be freed and handed to different values while the key is in use (``param.data = ...``
    or ``module.to()`` give a new address, ``load_state_dict``/in-place edits a new version).

    None while autograd tracks the weight (training: derived tensors must stay in the graph) and for inference
    tensors (whose version counter cannot be read).
    """
    if weight.requires_grad or weight.is_inference():
        return None
    key = (weight.data_ptr(), weight._version, weight.device, weight.dtype, tuple(weight.shape))
    if previous is not None and previous.key == key:
        return previous
    weight_t = weight.transpose(0, 1).contiguous() if transpose else None
    return WeightCache(key=key, weight_sq=weight.square().sum(dim=[2, 3]), weight_t=weight_t, source=weight.detach())


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool,
                     up: int, fir: torch.Tensor | None, padding: int, gain: float = 1.0,
                     cache: WeightCache | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample modulated (and demodulated) convolution, times ``gain``; returns a fresh tensor.

    x ``[B, I, H, W]``, weight ``[O, I, k, k]``, styles ``[B, I]``. For ``up == 2`` a stride-2 transposed
    convolution (weight in/out swapped, no spatial flip) is followed by FIR filtering with gain 4, padding 1,
    which gives ``2H`` outputs (spec 3.3).

    ``gain`` is folded into the demodulation coefficients (a ``[B, O]`` product instead of a pass over the
    image): the activation that follows is positively homogeneous, so ``lrelu(x + b) * g`` equals
    ``lrelu(g x + g b)`` up to rounding.

    ``bias [O]`` (optional, already scaled) is added inside the last convolution where it can be (oneDNN adds
    it while writing the output, sparing a pass over the activation), else afterwards.

    One head (``B == 1``) uses the fused form (modulated weights, one convolution), as the official code does
    at inference. Several heads use the official non-fused form (scale the input by the styles, one batched
    convolution with the shared weight, scale the output by the demodulation coefficients): the same sum in
    another order, and one batched convolution is far faster than a grouped one with per-sample weights.
    """
    b, in_ch, h, w_ = x.shape
    out_ch, _, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # fp16 range guard of the official layer; demodulation cancels the rescaling.
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        cache = None
    if demodulate:
        # sum_{i,k} (w[o,i,k] s[i])^2 = sum_i s[i]^2 sum_k w[o,i,k]^2: a [B, I] x [I, O] product instead of a
        # pass over the [B, O, I, k, k] modulated weights (same sum, another order).
        weight_sq = cache.weight_sq if cache is not None else weight.square().sum(dim=[2, 3])  # [O, I]
        dcoefs = (styles.square() @ weight_sq.t() + 1e-8).rsqrt() * gain  # [B, O]
    if b == 1 or not demodulate:
        scale = styles.reshape(b, 1, in_ch)  # [B, 1, I]
        if demodulate:
            scale = scale * dcoefs.reshape(b, out_ch, 1)  # [B, O, I]
        elif gain != 1:
            scale = scale * gain
        if b != 1:  # (for one head a same-shape reshape would drop the channels_last strides oneDNN keeps)
            x = x.reshape(1, b * in_ch, h, w_)
        if up == 1:
            wgt = (weight.unsqueeze(0) * scale.reshape(b, out_ch if demodulate else 1, in_ch, 1, 1)).to(x.dtype)
            conv_bias = None if bias is None else bias.to(x.dtype).repeat(b)
            x = F.conv2d(x, wgt.reshape(b * out_ch, in_ch, kh, kw), conv_bias, padding=padding, groups=b)
            bias = None
        else:
            # conv_transpose2d wants [in, out/groups, k, k]: modulate the cached transposed weight directly
            # instead of transposing a modulated copy.
            weight_t = cache.weight_t if cache is not None and cache.weight_t is not None else weight.transpose(0, 1)
            # weight_t: [I, O, k, k]
            wgt = weight_t.unsqueeze(0) * scale.transpose(1, 2).reshape(b, in_ch, -1, 1, 1)  # [B, I, O, k, k]
            x = F.conv_transpose2d(x, wgt.to(x.dtype).reshape(b * in_ch, out_ch, kh, kw), stride=up, padding=0,
                                   groups=b)
        if b != 1:
            x = x.reshape(b, out_ch, x.shape[2], x.shape[3])
    else:
        x = x * styles.to(x.dtype).reshape(b, -1, 1, 1)
        if up == 1:
            x = F.conv2d(x, weight.to(x.dtype), padding=padding)
        else:
            weight_t = cache.weight_t if cache is not None and cache.weight_t is not None else weight.transpose(0, 1)
            x = F.conv_transpose2d(x, weight_t.to(x.dtype), stride=up, padding=0)
        scale = dcoefs.to(x.dtype).reshape(b, -1, 1, 1)
        x = x.mul_(scale) if not x.requires_grad else x * scale
    if up != 1:
        if fir is None:
            raise ValueError(f"modulated_conv2d: up={up} needs the resampling FIR filter, got fir=None")
        # The FIR's padding of 1 on every side is the convolution's own zero padding (no padded copy).
        fir_bias = None if bias is None else bias.to(x.dtype)
        x = F.conv2d(x, _depthwise_fir(fir, out_ch, float(up * up), x.dtype), fir_bias, padding=1, groups=out_ch)
        bias = None
    if bias is not None:
        b_ = bias.to(x.dtype).reshape(1, -1, 1, 1)
        x = x.add_(b_) if not x.requires_grad else x + b_
    return x


def _add_bias_act(x: torch.Tensor, bias: torch.Tensor | None, noise: torch.Tensor | None, activation: str,
                  clamp: float | None) -> torch.Tensor:
    """``clamp(act(x + noise + bias))`` in place when ``x`` is a fresh tensor autograd does not track.

    On the CPU every out-of-place pass over a 256x256x128 activation allocates 32 MB, and the page faults of
    that allocation cost 10x the arithmetic (measured: 16 ms vs 1.1 ms for one multiply), so inference updates
    the convolution's output in place; with autograd on (demo training) the same math runs out of place.
    """
    if bias is not None:
        bias = bias.to(x.dtype).reshape(1, -1, 1, 1)
    if x.requires_grad:
        if noise is not None:
            x = x + noise
        if bias is not None:
            x = x + bias
        if activation == "lrelu":
            x = F.leaky_relu(x, LRELU_SLOPE)
        return x if clamp is None else x.clamp(-clamp, clamp)
    if noise is not None:
        x.add_(noise)
    if bias is not None:
        x.add_(bias)
    if activation == "lrelu":
        F.leaky_relu_(x, LRELU_SLOPE)
    return x if clamp is None else x.clamp_(-clamp, clamp)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu (x sqrt 2) + optional clamp."""

    # Buffers, declared so the type checker does not read them as Tensor | Module.
    resample_filter: torch.Tensor  # [f, f] FIR
    noise_const: torch.Tensor  # [resolution, resolution]; only registered when use_noise

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int,
                 conv_clamp: float | None, use_noise: bool, resample_filter: tuple[float, ...]) -> None:
        super().__init__()
        self.resolution, self.up, self.conv_clamp, self.use_noise = resolution, up, conv_clamp, use_noise
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("resample_filter", make_fir_filter(resample_filter))
        self._weight_cache: WeightCache | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        styles = self.affine(w)
        self._weight_cache = weight_cache(self.weight, self._weight_cache, transpose=self.up != 1)
        # The lrelu gain sqrt(2) is folded into the convolution, so noise and bias are scaled by it too.
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, up=self.up, fir=self.resample_filter,
                             padding=1, gain=LRELU_GAIN, cache=self._weight_cache, bias=self.bias * LRELU_GAIN)
        noise = None
        if self.use_noise and noise_mode == "const":
            noise = (self.noise_const * (self.noise_strength * LRELU_GAIN)).to(x.dtype)  # [R, R]
        elif self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, dtype=x.dtype)
            noise = noise * (self.noise_strength * LRELU_GAIN).to(x.dtype)
        clamp = self.conv_clamp
        if clamp is None and x.dtype == torch.float16:
            clamp = FP16_CONV_CLAMP
        return _add_bias_act(x, None, noise, "lrelu", None if clamp is None else clamp * 1.0)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias; writes the UV feature channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, up=1, fir=None, padding=0, bias=self.bias)
        clamp = self.conv_clamp
        if clamp is None and x.dtype == torch.float16:
            clamp = FP16_CONV_CLAMP
        return _add_bias_act(x, None, None, "linear", clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip-architecture synthesis network."""

    resample_filter: torch.Tensor  # [f, f] FIR buffer (declared so the type checker does not see Tensor | Module)

    def __init__(self, in_channels: int, out_channels: int, resolution: int, img_channels: int,
                 config: GeneratorConfig, use_fp16: bool) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.register_buffer("resample_filter", make_fir_filter(config.resample_filter))

        def layer(in_ch: int, up: int) -> SynthesisLayer:
            return SynthesisLayer(in_ch, out_channels, w_dim=config.w_dim, resolution=resolution, up=up,
                                  conv_clamp=config.conv_clamp, use_noise=config.use_noise,
                                  resample_filter=config.resample_filter)

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = layer(in_channels, up=2)
        self.conv1 = layer(out_channels, up=1)
        self.torgb = ToRGBLayer(out_channels, img_channels, config.w_dim, config.conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: NoiseMode,
                fp16: bool | torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``fp16``: False/True (float32/float16, the historical flag) or the block's compute dtype."""
        if isinstance(fp16, torch.dtype):
            dtype = fp16
        else:
            dtype = torch.float16 if fp16 else torch.float32
        # channels_last on the CPU: oneDNN's convolutions run ~20% faster and its depth-wise FIR 6x faster on
        # NHWC than on NCHW (measured, released size); CUDA keeps the official NCHW layout.
        layout = torch.channels_last if ws.device.type == "cpu" else torch.contiguous_format
        w_rows = ws.unbind(dim=1)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x.contiguous(memory_format=layout), w_rows[0], noise_mode)
        else:
            if x is None:
                raise ValueError(f"synthesis block {self.resolution}: needs the previous block's features, got None")
            if dtype == torch.float16 and self.conv0.conv_clamp is None:
                x = x.clamp(-FP16_CONV_CLAMP, FP16_CONV_CLAMP)  # an unclamped fp32 block can exceed fp16's range
            x = self.conv0(x.to(dtype).contiguous(memory_format=layout), w_rows[0], noise_mode)
            x = self.conv1(x, w_rows[1], noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, w_rows[self.num_conv]).to(torch.float32)
        if img is None:
            img = y
        elif img.requires_grad or y.requires_grad:
            img = img + y
        else:
            img = img.add_(y)  # img is the fresh upsampled tensor
        return x, img


class SynthesisNetwork(nn.Module):
    """ws ``[B, num_ws, w_dim]`` -> UV feature planes ``[B, C_uv, R_p, R_p]``."""

    def __init__(self, config: GeneratorConfig, img_channels: int) -> None:
        super().__init__()
        self.block_resolutions = config.block_resolutions
        res_log2 = int(math.log2(config.plane_resolution))
        num_fp16_res = config.num_fp16_res
        if num_fp16_res > 0 and config.pretrained_plane_resolution is not None:
            num_fp16_res += res_log2 - int(math.log2(config.pretrained_plane_resolution))
        self.default_fp16_resolution = max(2 ** (res_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = config.channels_at(res // 2) if res > 4 else 0
            block = SynthesisBlock(in_ch, config.channels_at(res), res, img_channels, config,
                                   use_fp16=res >= self.default_fp16_resolution)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
            is_last = res == config.plane_resolution or res == config.pretrained_plane_resolution
            if is_last:  # progressive growing marks a second block as last: one extra (unused) ws row
                self.num_ws += block.num_torgb

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const",
                fp16_resolution: int | None = None, *, low_dtype: torch.dtype = torch.float16) -> torch.Tensor:
        """``fp16_resolution``: blocks at or above it run in ``low_dtype`` (float16 unless asked otherwise;
        None: the config's choice, which applies on CUDA only)."""
        ws = ws.to(torch.float32)
        if fp16_resolution is None:
            fp16_resolution = self.default_fp16_resolution if ws.device.type == "cuda" else 1 << 30
        x = img = None
        w_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            dtype = low_dtype if block.resolution >= fp16_resolution else torch.float32
            x, img = block(x, img, block_ws, noise_mode, fp16=dtype)
        if img is None:
            raise ValueError("synthesis network has no blocks (config.block_resolutions is empty)")
        return img.contiguous()
