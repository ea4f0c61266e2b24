"""GeneratorConfig: every GGHeadConfig field that matters at inference, validated.

The official ``GGHeadConfig`` has well over a hundred fields; spec section 2 lists which ones the forward pass
reads. This dataclass carries exactly those (names as in the official config, so a reader can compare them with
``model_config.json``), refuses the values our implementation does not support with a :class:`ConfigError`
that names the flag, and records the template and the fields it deliberately ignores (spec 2.3) for ``info``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gghead_core.gaussians import SH_C0  # noqa: F401 - re-exported: the generator and the demo import it here

UV_ATTRIBUTES = ("POSITION", "SCALE", "ROTATION", "COLOR", "OPACITY")


class ConfigError(ValueError):
    """A generator configuration that is invalid or uses a feature this implementation does not support."""


# Type of every field: int, float, bool, str, strs (list of str), nums (list of numbers); "?" allows None.
_FIELD_KINDS = {
    "z_dim": "int", "w_dim": "int", "c_dim": "int", "c_gen_conditioning_zero": "bool", "c_scale": "float",
    "mapping_num_layers": "int", "mapping_embed_features": "int?", "mapping_layer_features": "int?",
    "mapping_lr_multiplier": "float", "mapping_activation": "str", "channel_base": "int", "channel_max": "int",
    "num_fp16_res": "int", "conv_clamp": "float?", "architecture": "str", "resample_filter": "nums",
    "kernel_size": "int", "use_noise": "bool", "synthesis_activation": "str", "plane_resolution": "int",
    "pretrained_plane_resolution": "int?", "uv_attributes": "strs", "use_rodriguez_rotation": "bool",
    "sh_degree": "int", "n_color_channels": "int", "use_align_corners": "bool", "interpolation_mode": "str",
    "use_zero_conv_position": "bool", "use_position_activation": "bool", "position_range": "float",
    "position_attenuation": "float", "scale_offset": "float", "max_scale": "float",
    "center_scale_activation": "bool", "no_exp_scale_activation": "bool", "scale_overshoot": "float",
    "use_rotation_activation": "bool", "rotation_attenuation": "float", "normalize_quaternions": "bool",
    "use_color_activation": "bool", "color_overshoot": "float", "opacity_overshoot": "float",
    "clamp_opacity": "bool", "neural_rendering_resolution": "int", "background_color": "nums",
    "template": "str", "n_uniform_flame_vertices": "int?", "ignored_fields": "strs",
}  # fmt: skip

# Longest lists accepted (``ignored_fields`` lists the official config's unused field names: 64 in 2024 files).
_LIST_LIMITS = {"ignored_fields": 4096}

# Inclusive bounds, far above the released FFHQ-512 model (z/w 512, channels 32768/512, planes 256).
_BOUNDS = {
    "z_dim": (1, 4096), "w_dim": (1, 4096), "c_dim": (0, 1024), "mapping_num_layers": (1, 32),
    "mapping_embed_features": (1, 4096), "mapping_layer_features": (1, 4096), "channel_base": (1, 1 << 20),
    "channel_max": (1, 4096), "num_fp16_res": (0, 16), "plane_resolution": (4, 4096),
    "neural_rendering_resolution": (1, 8192), "n_uniform_flame_vertices": (1, 4096),
}  # fmt: skip

# Our field name -> the name in the official GGHeadConfig, for messages a reader can look up.
_OFFICIAL_LABELS = {
    "mapping_num_layers": "mapping_network_config.num_layers",
    "mapping_embed_features": "mapping_network_config.embed_features",
    "mapping_layer_features": "mapping_network_config.layer_features",
    "mapping_lr_multiplier": "mapping_network_config.lr_multiplier",
    "mapping_activation": "mapping_network_config.activation",
    "synthesis_activation": "synthesis_network_config.activation",
    "use_rodriguez_rotation": "gaussian_attribute_config.use_rodriguez_rotation",
    "sh_degree": "gaussian_attribute_config.sh_degree",
    "n_color_channels": "gaussian_attribute_config.n_color_channels",
    "c_gen_conditioning_zero": "rendering_config.c_gen_conditioning_zero",
    "c_scale": "rendering_config.c_scale",
    **{k: f"synthesis_network_config.{k}" for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp",
                                                     "architecture", "resample_filter", "kernel_size", "use_noise")},
}


def field_label(name: str) -> str:
    """The official spelling of a field for messages (``channel_base`` -> ``synthesis_network_config.channel_base``)."""
    return _OFFICIAL_LABELS.get(name, name)


def _describe(value: object) -> str:
    if isinstance(value, int) and not -(10**18) < value < 10**18:
        return f"an integer of {value.bit_length()} bits"  # (repr of a huge int is slow or refused)
    text = repr(value) if isinstance(value, (str, int, float)) else ""
    return f"{type(value).__name__} {text[:40]}".strip()


@dataclass
class GeneratorConfig:
    """Inference-relevant GGHead generator configuration (official field names, released FFHQ-512 defaults)."""

    # latent and conditioning
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 25
    c_gen_conditioning_zero: bool = False
    c_scale: float = 1.0
    # mapping network
    mapping_num_layers: int = 2
    mapping_embed_features: int | None = None
    mapping_layer_features: int | None = None
    mapping_lr_multiplier: float = 0.01
    mapping_activation: str = "lrelu"
    # synthesis network (StyleGAN2, predicts the UV planes)
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    architecture: str = "skip"
    resample_filter: tuple[float, ...] = (1, 3, 3, 1)  # FIR taps; integral taps are kept as int
    kernel_size: int = 3
    use_noise: bool = True
    synthesis_activation: str = "lrelu"
    plane_resolution: int = 256
    pretrained_plane_resolution: int | None = None
    # UV layout and Gaussian attribute decoding
    uv_attributes: tuple[str, ...] = UV_ATTRIBUTES
    use_rodriguez_rotation: bool = True
    sh_degree: int = 1
    n_color_channels: int = 3
    use_align_corners: bool = False
    interpolation_mode: str = "bilinear"
    use_zero_conv_position: bool = True
    use_position_activation: bool = True
    position_range: float = 0.25
    position_attenuation: float = 1.0
    scale_offset: float = -5.0
    max_scale: float = -3.0
    center_scale_activation: bool = True
    no_exp_scale_activation: bool = False
    scale_overshoot: float = 0.001
    use_rotation_activation: bool = True
    rotation_attenuation: float = 1.0
    normalize_quaternions: bool = True
    use_color_activation: bool = True
    color_overshoot: float = 0.001
    opacity_overshoot: float = 0.001
    clamp_opacity: bool = False
    # rendering defaults and descriptive facts
    neural_rendering_resolution: int = 512
    background_color: tuple[float, ...] = (255.0, 255.0, 255.0)  # RGB: 3 values, checked in validate()
    template: str = "unknown"
    n_uniform_flame_vertices: int | None = None
    # fields read from the file that the official forward pass ignores (spec 2.3); kept for `info`
    ignored_fields: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        self._check_types()
        self.resample_filter = tuple(int(v) if float(v).is_integer() else float(v) for v in self.resample_filter)
        self.uv_attributes = tuple(str(a).upper() for a in self.uv_attributes)
        self.background_color = tuple(float(v) for v in self.background_color)
        self.ignored_fields = tuple(self.ignored_fields)
        self.validate()

    def _check_types(self) -> None:
        """Every field has the JSON/pickle type its annotation says, before anything computes with it: a file
        that stores ``w_dim`` as a string gets a sentence naming ``w_dim``, not a TypeError from deep inside."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_KINDS[f.name]
            if kind.endswith("?"):
                if value is None:
                    continue
                kind = kind[:-1]
            shown = field_label(f.name)
            if kind == "int":
                if type(value) is bool or not isinstance(value, int):
                    raise ConfigError(f"invalid generator config: {shown} must be an integer, got {_describe(value)}")
                if not -(1 << 31) < value < (1 << 31):
                    raise ConfigError(f"invalid generator config: {shown} = {_describe(value)} is out of range")
            elif kind == "float":
                if type(value) is bool or not isinstance(value, (int, float)):
                    raise ConfigError(f"invalid generator config: {shown} must be a number, got {_describe(value)}")
                if not math.isfinite(float(value)) or abs(float(value)) > 1e30:
                    raise ConfigError(f"invalid generator config: {shown} = {value} is not a finite number "
                                      "within +-1e30")
                setattr(self, f.name, float(value))
            elif kind == "bool":
                if value not in (True, False) or not isinstance(value, (bool, int)):
                    raise ConfigError(f"invalid generator config: {shown} must be true or false, got "
                                      f"{_describe(value)}")
                setattr(self, f.name, bool(value))
            elif kind == "str":
                if not isinstance(value, str) or len(value) > 200:
                    raise ConfigError(f"invalid generator config: {shown} must be a short string, got "
                                      f"{_describe(value)}")
            else:  # "strs" / "nums": a list or tuple of strings / finite numbers
                limit = _LIST_LIMITS.get(f.name, 64)
                if not isinstance(value, (list, tuple)) or len(value) > limit:
                    raise ConfigError(f"invalid generator config: {shown} must be a list (at most {limit} items), "
                                      f"got {_describe(value)}")
                for item in value:
                    ok = (isinstance(item, str) and len(item) <= 200) if kind == "strs" else (
                        type(item) is not bool and isinstance(item, (int, float)) and math.isfinite(item)
                        and abs(item) <= 1e30)
                    if not ok:
                        what = "strings" if kind == "strs" else "finite numbers"
                        raise ConfigError(f"invalid generator config: {shown} must hold {what}, got "
                                          f"{_describe(item)} in it")

    # ---- derived facts -----------------------------------------------------------------------------------------
    @property
    def rotation_channels(self) -> int:
        return 3 if self.use_rodriguez_rotation else 4

    @property
    def num_sh_coefficients(self) -> int:
        return (self.sh_degree + 1) ** 2

    def attribute_channels(self) -> dict[str, int]:
        """Channels per UV attribute (spec 2.2)."""
        return {
            "POSITION": 3,
            "SCALE": 3,
            "ROTATION": self.rotation_channels,
            "COLOR": self.num_sh_coefficients * self.n_color_channels,
            "OPACITY": 1,
        }

    def attribute_slices(self) -> dict[str, slice]:
        """Channel range of each attribute in ``uv_attributes`` order."""
        channels, start, out = self.attribute_channels(), 0, {}
        for name in self.uv_attributes:
            out[name] = slice(start, start + channels[name])
            start += channels[name]
        return out

    @property
    def n_uv_channels(self) -> int:
        return sum(self.attribute_channels()[a] for a in self.uv_attributes)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.plane_resolution)) + 1)]

    def channels_at(self, resolution: int) -> int:
        return min(self.channel_base // resolution, self.channel_max)

    # ---- validation --------------------------------------------------------------------------------------------
    def validate(self) -> None:
        def refuse(flag: str, why: str) -> None:
            raise ConfigError(f"unsupported generator config: {flag} ({why})")

        # Sane bounds (far above the released model) so that a hostile value is refused before it allocates.
        for name, (lo, hi) in _BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                refuse(field_label(name), f"{value} is not in {lo}..{hi}")
        if self.mapping_activation not in ("lrelu", "linear"):
            refuse("mapping_network_config.activation", f"{self.mapping_activation!r} is not lrelu or linear")
        if self.synthesis_activation != "lrelu":
            refuse("synthesis_network_config.activation", f"{self.synthesis_activation!r} is not lrelu")
        if self.architecture != "skip":
            refuse("synthesis_network_config.architecture", f"{self.architecture!r}; only 'skip' is implemented")
        if self.kernel_size != 3:
            refuse("synthesis_network_config.kernel_size", f"{self.kernel_size}; only 3 is implemented")
        res = self.plane_resolution
        if res < 4 or res & (res - 1):
            refuse("plane_resolution", f"{res} is not a power of two >= 4")
        if self.pretrained_plane_resolution is not None:
            p = self.pretrained_plane_resolution
            if p < 4 or p & (p - 1) or p > res:  # (p <= res <= 4096: bounded above)
                refuse("pretrained_plane_resolution", f"{p} is not a power of two in [4, plane_resolution]")
        if self.channel_base <= 0 or self.channel_max <= 0:
            refuse("channel_base/channel_max", "must be positive")
        if not 1 <= len(self.resample_filter) <= 16:
            refuse("synthesis_network_config.resample_filter", f"{len(self.resample_filter)} taps; 1..16 expected")
        if len(self.background_color) != 3:
            refuse("background_color", f"{len(self.background_color)} values; 3 expected")
        if sorted(self.uv_attributes) != sorted(UV_ATTRIBUTES):
            refuse(
                "uv_attributes",
                f"{list(self.uv_attributes)}; all five of {list(UV_ATTRIBUTES)} must come from the UV planes "
                "(learnable per-Gaussian attributes are not implemented)",
            )
        if not 0 <= self.sh_degree <= 3:
            refuse("gaussian_attribute_config.sh_degree", f"{self.sh_degree} is not in 0..3")
        if self.n_color_channels != 3:
            refuse("gaussian_attribute_config.n_color_channels", f"{self.n_color_channels}; only RGB (3)")
        if self.interpolation_mode not in ("bilinear", "nearest", "bicubic"):
            refuse("interpolation_mode", f"{self.interpolation_mode!r}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            refuse("conv_clamp", f"{self.conv_clamp} must be positive or None")

    # ---- (de)serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"generator config must be a JSON object, got {_describe(data)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise ConfigError(f"unknown generator config field(s): {', '.join(unknown)[:200]}")
        return cls(**data)
