"""Test helper: write official-format GGHead snapshot pickles from one of our generators.

The real official code is not a dependency, so this helper fakes just enough of it: classes registered under the
official module paths (``gghead.models.gghead_model.GGHeadModel`` ...) that pickle the way the originals do
(NEWOBJ + BUILD of the instance ``__dict__``), EG3D persistent layers as ``_reconstruct_persistent_obj(meta)``
calls, ``GaussianAttribute`` enum members, and real torch tensors (plain pickle: ``_rebuild_tensor_v2`` over
``_load_from_bytes`` storages). The result exercises the loader on configurations the shared fixture lacks.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any

import torch

from gghead_core.generator import Generator

_PERSISTENT_CLASSES = {"FullyConnectedLayer", "MappingNetwork", "SynthesisLayer", "ToRGBLayer"}


class _Fake:
    """Base of the fake official classes: pickled by reference with their ``__dict__`` as state."""

    def __init__(self, **state: Any) -> None:
        self.__dict__.update(state)


def _reconstruct_persistent_obj(meta: dict) -> Any:  # never called: only its name is pickled
    raise AssertionError("must not be called")


class _Persistent:
    def __init__(self, class_name: str, state: dict) -> None:
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src="# source omitted: eg3d.training.networks_stylegan2",
                    class_name=self.class_name, state=self.state)
        return (_reconstruct_persistent_obj, (meta,))


class _BoundRef:
    """``getattr(obj, name)`` as pickled for bound methods of the generator."""

    def __init__(self, obj: Any, name: str) -> None:
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


_CLASSES: dict[tuple[str, str], type] = {}


def _cls(module: str, name: str) -> type:
    key = (module, name)
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (_Fake,), {"__module__": module, "__qualname__": name})
    return _CLASSES[key]


def _enum(value: str) -> Any:
    enum_cls = _cls("gghead.config.gaussian_attribute", "GaussianAttribute")

    class _Member:
        def __reduce__(self):
            return (enum_cls, (value,))

    return _Member()


@contextmanager
def fake_official_modules():
    """Register the fake classes under the official module names while pickling."""
    added = []
    modules = {m for m, _ in _CLASSES} | {"eg3d.torch_utils.persistence"}
    for module in sorted(modules):
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
    for (module, name), cls in _CLASSES.items():
        setattr(sys.modules[module], name, cls)
    _reconstruct_persistent_obj.__module__ = "eg3d.torch_utils.persistence"
    sys.modules["eg3d.torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def _module_state(module: torch.nn.Module, extra: dict | None = None) -> dict:
    """nn.Module internals as the official pickles carry them, children converted recursively."""
    state = {
        "training": False,
        "_parameters": OrderedDict((k, torch.nn.Parameter(v.detach().clone(), requires_grad=False))
                                   for k, v in module._parameters.items()),
        "_buffers": OrderedDict((k, v.detach().clone()) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_modules": OrderedDict((k, _convert(v)) for k, v in module._modules.items()),
        "_forward_hooks": OrderedDict(),
    }
    state.update(extra or {})
    return state


def _convert(module: torch.nn.Module) -> Any:
    name = type(module).__name__
    if name in _PERSISTENT_CLASSES:
        return _Persistent(name, _module_state(module, {"_init_args": (), "_init_kwargs": {}}))
    if name == "Conv2d":
        return _cls("torch.nn.modules.conv", "Conv2d")(**_module_state(module, {"in_channels": 3}))
    official = {"_Backbone": ("gghead.models.stylegan2", "GGHGenerator"),
                "SynthesisNetwork": ("gghead.models.stylegan2", "GGHSynthesisNetwork"),
                "SynthesisBlock": ("gghead.models.stylegan2", "GGHSynthesisBlock")}[name]
    return _cls(*official)(**_module_state(module))


def official_config_record(generator: Generator, **overrides: Any) -> Any:
    cfg = generator.config
    mapping = _cls("gghead.models.gghead_model", "MappingNetworkConfig")(
        num_layers=cfg.mapping_num_layers, embed_features=cfg.mapping_embed_features,
        layer_features=cfg.mapping_layer_features, activation=cfg.mapping_activation,
        lr_multiplier=cfg.mapping_lr_multiplier)
    synthesis = _cls("gghead.models.gghead_model", "SynthesisNetworkConfig")(
        channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
        architecture=cfg.architecture, resample_filter=list(cfg.resample_filter), conv_clamp=cfg.conv_clamp,
        fp16_channels_last=False, fused_modconv_default="inference_only", kernel_size=cfg.kernel_size,
        use_noise=cfg.use_noise, activation=cfg.synthesis_activation)
    gaussian = _cls("gghead.config.gaussian_attribute", "GaussianAttributeConfig")(
        use_rodriguez_rotation=cfg.use_rodriguez_rotation, sh_degree=cfg.sh_degree,
        n_color_channels=cfg.n_color_channels)
    rendering = _cls("gghead.models.gghead_model", "RenderingConfig")(
        c_gen_conditioning_zero=cfg.c_gen_conditioning_zero, c_scale=cfg.c_scale, box_warp=1)
    fields = dict(
        z_dim=cfg.z_dim, w_dim=cfg.w_dim, c_dim=cfg.c_dim, mapping_network_config=mapping,
        synthesis_network_config=synthesis, rendering_config=rendering, gaussian_attribute_config=gaussian,
        uv_attributes=[_enum(a) for a in cfg.uv_attributes], plane_resolution=cfg.plane_resolution,
        pretrained_plane_resolution=cfg.pretrained_plane_resolution, use_align_corners=cfg.use_align_corners,
        interpolation_mode=cfg.interpolation_mode, use_zero_conv_position=cfg.use_zero_conv_position,
        use_position_activation=cfg.use_position_activation, position_range=cfg.position_range,
        position_attenuation=cfg.position_attenuation, scale_offset=cfg.scale_offset, max_scale=cfg.max_scale,
        center_scale_activation=cfg.center_scale_activation, no_exp_scale_activation=cfg.no_exp_scale_activation,
        scale_overshoot=cfg.scale_overshoot, use_rotation_activation=cfg.use_rotation_activation,
        rotation_attenuation=cfg.rotation_attenuation, normalize_quaternions=cfg.normalize_quaternions,
        use_color_activation=cfg.use_color_activation, color_overshoot=cfg.color_overshoot,
        opacity_overshoot=cfg.opacity_overshoot, clamp_opacity=cfg.clamp_opacity,
        neural_rendering_resolution=cfg.neural_rendering_resolution, background_color=tuple(cfg.background_color),
        use_plane_template=cfg.template == "plane", use_sphere_template=cfg.template == "sphere",
        use_gsm_flame_template=False, use_flame_template_v2=False, use_background_cnn=False,
        disable_position_offsets=False, n_uniform_flame_vertices=cfg.n_uniform_flame_vertices,
        n_shells=1, use_masks=False,
    )
    fields.update(overrides)
    return _cls("gghead.models.gghead_model", "GGHeadConfig")(**fields)


def official_generator_record(generator: Generator, **config_overrides: Any) -> Any:
    """Our generator as a fake ``GGHeadModel`` (with the self-referential embedded GaussianModel)."""
    state = _module_state(generator)
    state["_buffers"]["_gaussian_bg"] = torch.ones(3)
    state["_buffers"]["_gaussian_bg_train"] = torch.ones(3)
    state["_non_persistent_buffers_set"] = {"_gaussian_bg", "_gaussian_bg_train"}
    model = _cls("gghead.models.gghead_model", "GGHeadModel")()
    gaussian_model = _cls("gaussian_splatting.scene.gaussian_model", "GaussianModel")(
        active_sh_degree=generator.config.sh_degree, max_sh_degree=generator.config.sh_degree,
        _xyz=torch.empty(0), opacity_activation=_BoundRef(model, "_apply_opacity_activation"))
    state.update(_config=official_config_record(generator, **config_overrides), z_dim=generator.z_dim,
                 c_dim=generator.c_dim, w_dim=generator.w_dim, _gaussian_model=gaussian_model,
                 _logger_bundle=None, _last_planes=None)
    model.__dict__.update(state)
    return model


def write_official_pickle(generator: Generator, path, layout: str = "training", **config_overrides: Any) -> None:
    """Write ``generator`` as an official snapshot: ``layout='training'`` (train_loop keys) or ``'released'``."""
    g_ema = official_generator_record(generator, **config_overrides)
    g = official_generator_record(generator, **config_overrides)
    discriminator = _cls("gghead.models.gaussian_discriminator", "GaussianDiscriminator")(
        **_module_state(torch.nn.Module()))
    if layout == "training":
        snapshot = {"training_set_kwargs": {"resolution": 512}, "G": g, "D": discriminator, "G_ema": g_ema,
                    "augment_pipe": None}
    elif layout == "released":
        snapshot = {"G": g, "G_ema": g_ema, "D": discriminator}
    else:
        raise ValueError(layout)
    with fake_official_modules(), open(path, "wb") as f:
        pickle.dump(snapshot, f, protocol=4)
