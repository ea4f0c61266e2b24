"""Reading and writing generator checkpoints.

Two formats:

* official GGHead training snapshots (``.pkl``): read with the restricted unpickler of ``_pickle_reader`` (no
  import of the authors' code, nothing in the file is executed), then turned into a :class:`GeneratorConfig`
  plus a flat ``name -> tensor`` dict;
* our own ``.safetensors`` file: the same tensors under the same names, the config as JSON metadata.

Every failure surfaces as :class:`CheckpointError` with a one-line message that names the file.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import struct
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeGuard

import torch

from ._files import NotRegularFileError, open_regular
from ._pickle_reader import (
    PersistentRecord,
    PickleLimitError,
    PickleSecurityError,
    StubObject,
    restricted_load,
)
from ._resources import resource_dir
from .config import ConfigError, GeneratorConfig
from .generator import Generator
from .vocabulary import one_line

DEMO_CHECKPOINT = resource_dir("checkpoints") / "demo.safetensors"
SAFETENSORS_FORMAT = "gghead-viewer-generator"
SAFETENSORS_FORMAT_VERSION = "1"
MAX_SAFETENSORS_KEYS = 20_000  # our files hold a few hundred tensors


class CheckpointError(Exception):
    """A checkpoint could not be read, is not a GGHead generator, or uses an unsupported feature."""


# ----------------------------------------------------------------------------------------------------------------
# public entry points


def load_generator(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator from an official ``.pkl`` snapshot or our ``.safetensors`` file.

    ``path=None`` loads the bundled demo model. The result is in eval mode with gradients disabled.
    Raises :class:`CheckpointError` (one-line message) for anything that is not a readable GGHead generator.
    """
    if path is None:
        if not DEMO_CHECKPOINT.is_file():
            raise CheckpointError(
                f"no checkpoint given and the bundled demo model is missing ({DEMO_CHECKPOINT}); pass --ckpt PATH")
        path = DEMO_CHECKPOINT
    path = Path(path)
    kind = _sniff(path)
    try:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CheckpointError(f"device {device} requested but CUDA is not available")
    except RuntimeError as exc:
        raise CheckpointError(f"invalid device {device!r}: {exc}") from None
    config, tensors = _read_safetensors(path) if kind == "safetensors" else _read_official(path)
    generator = build_generator(config, tensors, source=path)
    generator.checkpoint_path = path.resolve()
    return generator.to(device).eval().requires_grad_(False)


def build_generator(config: GeneratorConfig, tensors: dict[str, torch.Tensor], source: Path | str = "?") -> Generator:
    """Construct a :class:`Generator` and fill it from a flat tensor dict, checking names and shapes."""
    name = Path(source).name
    template = {}
    for key in ("_uv_grid", "_uv_position_map", "_flame_vertices"):
        if key not in tensors:
            raise CheckpointError(f"{name}: missing template buffer {key}")
        template[key] = tensors[key]
    uv_grid, position_map, points = template["_uv_grid"], template["_uv_position_map"], template["_flame_vertices"]
    if uv_grid.dim() != 4 or uv_grid.shape[0] != 1 or uv_grid.shape[2:] != (1, 2):
        raise CheckpointError(f"{name}: _uv_grid has shape {tuple(uv_grid.shape)}, expected [1, G, 1, 2]")
    if points.shape != (1, uv_grid.shape[1], 3):
        raise CheckpointError(f"{name}: _flame_vertices has shape {tuple(points.shape)}, expected [1, {uv_grid.shape[1]}, 3]")
    if position_map.dim() != 3 or position_map.shape[0] != 3:
        raise CheckpointError(f"{name}: _uv_position_map has shape {tuple(position_map.shape)}, expected [3, R, R]")
    # Before allocating anything, compare the size of the network the config describes with the values the file
    # holds: a hostile config (channel_base, plane_resolution, z_dim ...) in a small file is refused here. (The
    # meta device would give exact shapes, but its first use imports ~800 modules: 2 s on every load.)
    held = sum(t.numel() for t in tensors.values() if isinstance(t, torch.Tensor))
    needed = estimated_generator_elements(config)
    if needed > 2 * held + _ESTIMATE_SLACK:
        raise CheckpointError(
            f"{name}: the config describes a generator of about {needed / 1e6:.1f} M values but the file holds "
            f"{held / 1e6:.1f} M; config and tensors do not match")
    try:
        generator = Generator(config, uv_grid=uv_grid, uv_position_map=position_map, template_points=points)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: {one_line(exc, limit=300)}") from None
    expected = generator.state_dict()
    missing = [k for k in expected if k not in tensors]
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise CheckpointError(f"{name}: {len(missing)} tensor(s) missing for this config: {shown}")
    state = {}
    for key, ref in expected.items():
        value = tensors[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(ref.shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{name}: tensor {key} has shape {got}, expected {tuple(ref.shape)}")
        if not value.is_floating_point():
            raise CheckpointError(f"{name}: tensor {key} has dtype {value.dtype}, expected floating point")
        state[key] = value
    for key, value in state.items():
        state[key] = value.to(torch.float32)
        if not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{name}: tensor {key} contains NaN or infinite values")
    generator.load_state_dict(state, strict=True)
    return generator


_ESTIMATE_SLACK = 16 << 20  # values; 64 MiB of float32 whatever the file holds


def estimated_generator_elements(config: GeneratorConfig) -> int:
    """An upper estimate of the parameters + buffers of ``Generator(config)``, from the config alone (no torch).

    Per synthesis block at resolution r with c channels (c_in from the block before): two 3x3 convs, their
    affines from w, the toRGB layer, two noise maps, the constant input and the FIR filters; the mapping MLP
    with its widest layer everywhere. Within 2x of the truth for every configuration in the tests.
    """
    c = config
    width = max(c.z_dim, c.w_dim, c.c_dim, c.mapping_layer_features or 0, c.mapping_embed_features or 0)
    total = (c.mapping_num_layers + 2) * (width + 1) * width
    taps = len(c.resample_filter) ** 2
    c_in = 0
    for res in c.block_resolutions:
        ch = c.channels_at(res)
        c_in = c_in or ch
        total += 9 * (c_in + ch) * ch + (c.w_dim + 1) * (c_in + 2 * ch) + ch * (c.n_uv_channels + 3)
        total += 2 * res * res + 16 * ch + 2 * taps + c.n_uv_channels
        c_in = ch
    return total


def save_safetensors(generator: Generator, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``generator`` as our ``.safetensors`` format (atomically; refuses to replace a file unasked)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: output must end in .safetensors")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in generator.state_dict().items()}
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "format_version": SAFETENSORS_FORMAT_VERSION,
        "config": json.dumps(generator.config.to_dict()),
    }
    # A short hidden temp name (not derived from the output's name): a legal 255-byte output name must work.
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".partial.safetensors", dir=path.parent)
    os.close(fd)
    try:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except Exception as exc:  # safetensors reports I/O failures as its own error type
            from .export import OutputWriteError

            text = str(exc)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space left" in text:
                raise OutputWriteError(f"disk full while writing {path}") from None
            raise OutputWriteError(f"cannot write {path}: {one_line(exc, limit=300)}") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a converted model is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> Path:
    """Read any supported checkpoint and write it as ``.safetensors``; outputs are identical after loading."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists (pass --overwrite to replace it)")
    return save_safetensors(load_generator(src), dst, overwrite=overwrite)


# ----------------------------------------------------------------------------------------------------------------
# file type detection


def _open_checkpoint(path: Path) -> Any:
    """Open ``path`` for reading only if it is a regular file; never block (see :mod:`gghead_core._files`)."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except NotRegularFileError as exc:
        what = "a directory" if "folder" in str(exc) else str(exc).removeprefix("it is ")
        raise CheckpointError(f"{path} is {what}, not a checkpoint file; a checkpoint must be a regular file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def _sniff(path: Path) -> str:
    try:
        with _open_checkpoint(path) as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path} is empty")
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:2] == b"PK":
        raise CheckpointError(f"{path.name} is a zip archive (a torch.save file?), not a GGHead snapshot pickle")
    # Anything else is parsed as a pickle (official snapshots use protocol 4; older protocols have no header).
    # The restricted unpickler refuses whatever is not a plausible snapshot.
    return "pickle"


# ----------------------------------------------------------------------------------------------------------------
# our safetensors format


def _read_safetensors(path: Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != SAFETENSORS_FORMAT:
                raise CheckpointError(f"{path.name}: not a GGHead viewer generator file (format metadata missing)")
            if metadata.get("format_version") != SAFETENSORS_FORMAT_VERSION:
                raise CheckpointError(f"{path.name}: unsupported format version {metadata.get('format_version')!r}")
            keys = list(f.keys())
            if len(keys) > MAX_SAFETENSORS_KEYS:  # each is loaded and checked: bound the time
                raise CheckpointError(f"{path.name}: {len(keys)} tensors, more than the {MAX_SAFETENSORS_KEYS} a "
                                      "generator file can hold")
            tensors = {key: f.get_tensor(key) for key in keys}
        config = GeneratorConfig.from_dict(json.loads(metadata["config"]))
    except CheckpointError:
        raise
    except ConfigError as exc:
        raise CheckpointError(f"{path.name}: {one_line(exc, limit=300)}") from None
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RecursionError, MemoryError) as exc:
        raise CheckpointError(f"{path.name}: corrupt .safetensors file ({one_line(exc, limit=300)})") from None
    return config, tensors


# ----------------------------------------------------------------------------------------------------------------
# official pickles


def _read_official(path: Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    try:
        with _open_checkpoint(path) as f:
            snapshot = restricted_load(f)
    except CheckpointError:
        raise
    except PickleSecurityError as exc:
        raise CheckpointError(f"refused to load {path.name}: {one_line(exc, limit=300)}; nothing in it was executed") from None
    except PickleLimitError as exc:
        raise CheckpointError(f"refused to load {path.name}: {one_line(exc, limit=300)}") from None
    except MemoryError:
        raise CheckpointError(f"{path.name} is not a readable GGHead checkpoint (it would need more memory than "
                              "is available)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, RecursionError, UnicodeDecodeError, RuntimeError, OverflowError, OSError) as exc:
        raise CheckpointError(f"{path.name} is not a readable GGHead checkpoint (truncated or corrupt: "
                              f"{type(exc).__name__}: {one_line(exc, limit=300)})") from None
    generator_obj = _pick_generator(snapshot, path.name)
    state = generator_obj.stub_state
    tensors = _flatten_module(generator_obj)
    if not any(k.startswith("backbone.synthesis.") for k in tensors):
        raise CheckpointError(f"{path.name}: the generator has no synthesis network tensors")
    return official_config(state.get("_config"), path.name), tensors


def _pick_generator(snapshot: Any, name: str) -> StubObject:
    if isinstance(snapshot, dict):
        for key in ("G_ema", "G"):
            obj = snapshot.get(key)
            if _is_generator(obj):
                return obj
        keys = ", ".join(k if isinstance(k, str) else f"<{type(k).__name__}>" for k in list(snapshot)[:8])[:200]
        raise CheckpointError(f"{name}: no GGHead generator found (expected 'G_ema' or 'G'; keys: {keys})")
    if _is_generator(snapshot):
        return snapshot
    raise CheckpointError(f"{name}: no GGHead generator found (top level is {type(snapshot).__name__})")


def _is_generator(obj: Any) -> TypeGuard[StubObject]:
    return (isinstance(obj, StubObject) and isinstance(obj.stub_state, dict)
            and "_config" in obj.stub_state and "_modules" in obj.stub_state)


def _module_state(obj: Any) -> dict | None:
    if isinstance(obj, StubObject):
        return obj.stub_state
    if isinstance(obj, PersistentRecord):
        return obj.state
    return None


def _flatten_module(root: Any) -> dict[str, torch.Tensor]:
    """Flat ``state_dict``-style names for every parameter and buffer under ``root`` (non-persistent included)."""
    out: dict[str, torch.Tensor] = {}
    stack = [("", root)]
    seen: set[int] = set()
    while stack:
        prefix, obj = stack.pop()
        state = _module_state(obj)
        if state is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        for registry in ("_parameters", "_buffers"):
            entries = state.get(registry) or {}
            if isinstance(entries, dict):
                for key, value in entries.items():
                    if isinstance(value, torch.Tensor):
                        out[prefix + str(key)] = value
        children = state.get("_modules") or {}
        if isinstance(children, dict):
            for key, child in children.items():
                stack.append((f"{prefix}{key}.", child))
    return out


_PLAIN_MAX_DEPTH = 20
_PLAIN_MAX_NODES = 100_000  # a real GGHeadConfig has a few hundred values


def _plain(obj: Any, name: str = "?") -> Any:
    """Config records -> plain Python values (dicts, lists, str, numbers, None).

    Shared references are expanded (the config is a tree in every real file), so the walk counts the values it
    produces and refuses a DAG that would expand to more than ``_PLAIN_MAX_NODES`` (4^16 leaves from 64 nodes).
    """
    budget = [_PLAIN_MAX_NODES]

    def walk(value: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise CheckpointError(f"{name}: the generator config expands to more than {_PLAIN_MAX_NODES} values "
                                  "(shared references?)")
        if depth > _PLAIN_MAX_DEPTH:
            raise CheckpointError(f"{name}: the generator config is nested more than {_PLAIN_MAX_DEPTH} levels deep")
        if isinstance(value, StubObject):
            state = value.stub_state
            return {str(k): walk(v, depth + 1) for k, v in state.items()} if isinstance(state, dict) else None
        if isinstance(value, (list, tuple)):
            return [walk(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {k if isinstance(k, str) else f"<{type(k).__name__}>": walk(v, depth + 1)
                    for k, v in value.items()}
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return f"<{type(value).__name__}>"  # tensors, references and records carry no config value

    return walk(obj, 0)


# Fields of GGHeadConfig whose values we honour, with the GeneratorConfig field they feed.
_TOP_LEVEL_FIELDS = {
    "z_dim": "z_dim", "w_dim": "w_dim", "c_dim": "c_dim",
    "plane_resolution": "plane_resolution", "pretrained_plane_resolution": "pretrained_plane_resolution",
    "uv_attributes": "uv_attributes", "use_align_corners": "use_align_corners",
    "interpolation_mode": "interpolation_mode", "use_zero_conv_position": "use_zero_conv_position",
    "use_position_activation": "use_position_activation", "position_range": "position_range",
    "position_attenuation": "position_attenuation", "scale_offset": "scale_offset", "max_scale": "max_scale",
    "center_scale_activation": "center_scale_activation", "no_exp_scale_activation": "no_exp_scale_activation",
    "scale_overshoot": "scale_overshoot", "use_rotation_activation": "use_rotation_activation",
    "rotation_attenuation": "rotation_attenuation", "normalize_quaternions": "normalize_quaternions",
    "use_color_activation": "use_color_activation", "color_overshoot": "color_overshoot",
    "opacity_overshoot": "opacity_overshoot", "clamp_opacity": "clamp_opacity",
    "neural_rendering_resolution": "neural_rendering_resolution", "background_color": "background_color",
    "n_uniform_flame_vertices": "n_uniform_flame_vertices",
}
_MAPPING_FIELDS = {"num_layers": "mapping_num_layers", "embed_features": "mapping_embed_features",
                   "layer_features": "mapping_layer_features", "lr_multiplier": "mapping_lr_multiplier",
                   "activation": "mapping_activation"}
_SYNTHESIS_FIELDS = {"channel_base": "channel_base", "channel_max": "channel_max", "num_fp16_res": "num_fp16_res",
                     "conv_clamp": "conv_clamp", "architecture": "architecture",
                     "resample_filter": "resample_filter", "kernel_size": "kernel_size", "use_noise": "use_noise",
                     "activation": "synthesis_activation"}
_GAUSSIAN_FIELDS = {"use_rodriguez_rotation": "use_rodriguez_rotation", "sh_degree": "sh_degree",
                    "n_color_channels": "n_color_channels"}
_RENDERING_FIELDS = {"c_gen_conditioning_zero": "c_gen_conditioning_zero", "c_scale": "c_scale"}
# Flags whose non-default value changes the forward pass in a way we do not implement: refused by name.
_REFUSED_IF_TRUE = ("use_background_cnn", "disable_position_offsets", "use_background_upsampler")
# Attenuation defaults changed on 2024-11-27 (1e-2 before, 1 after); a file without them predates both.
_OLD_DEFAULTS = {"position_attenuation": 1e-2, "rotation_attenuation": 1e-2}


def official_config(config_obj: Any, name: str = "?") -> GeneratorConfig:
    """Official ``GGHeadConfig`` record -> :class:`GeneratorConfig` (refusing unsupported flags by name)."""
    raw = _plain(config_obj, name)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{name}: the generator has no readable _config")
    for flag in _REFUSED_IF_TRUE:
        if raw.get(flag):
            raise CheckpointError(f"{name}: unsupported generator config: {flag}=True")
    sr = raw.get("super_resolution_config") or {}
    if isinstance(sr, dict) and sr.get("use_superresolution"):
        raise CheckpointError(f"{name}: unsupported generator config: super_resolution_config.use_superresolution=True")
    kwargs: dict[str, Any] = {}
    defaulted: list[str] = []

    def take(source: Any, table: dict[str, str], prefix: str) -> None:
        source = source if isinstance(source, dict) else {}
        for official, ours in table.items():
            if official in source:
                kwargs[ours] = source[official]
            else:
                defaulted.append(prefix + official)

    take(raw, _TOP_LEVEL_FIELDS, "")
    take(raw.get("mapping_network_config"), _MAPPING_FIELDS, "mapping_network_config.")
    take(raw.get("synthesis_network_config"), _SYNTHESIS_FIELDS, "synthesis_network_config.")
    take(raw.get("gaussian_attribute_config"), _GAUSSIAN_FIELDS, "gaussian_attribute_config.")
    take(raw.get("rendering_config"), _RENDERING_FIELDS, "rendering_config.")
    for key, old in _OLD_DEFAULTS.items():
        if key not in raw:
            kwargs[key] = old
    if "c_dim" not in raw:
        kwargs["c_dim"] = 25
    kwargs["template"] = _template_name(raw)
    handled = set(_TOP_LEVEL_FIELDS) | set(_REFUSED_IF_TRUE) | {
        "mapping_network_config", "synthesis_network_config", "gaussian_attribute_config", "rendering_config",
        "super_resolution_config", "use_gsm_flame_template", "use_flame_template_v2", "use_sphere_template",
        "use_plane_template"}
    kwargs["ignored_fields"] = tuple(sorted(k for k in raw if k not in handled))
    known = {f.name for f in fields(GeneratorConfig)}
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    try:
        return GeneratorConfig(**kwargs)
    except ConfigError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: invalid generator config ({one_line(exc, limit=300)})") from None


def _template_name(raw: dict) -> str:
    if raw.get("use_plane_template"):
        return "plane"
    if raw.get("use_sphere_template"):
        return "sphere"
    if raw.get("use_flame_template_v2"):
        return "FLAME v2"
    if raw.get("use_gsm_flame_template"):
        return "FLAME (no back, closed mouth)"
    return "FLAME"
