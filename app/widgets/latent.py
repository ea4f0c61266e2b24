"""Latent panel: seed A (+ random), seed B with an interpolation slider, animation, style mixing.

Interpolation is linear in W (mix the two heads' ws) or spherical in Z (slerp the Gaussian latents, then map);
Animate runs t along A -> B -> A with a chosen loop time. Style mixing replaces a range of ws rows (inclusive
layer numbers in the UI) with those of a third seed.
"""

from __future__ import annotations

import random
from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.state import clamp
from app.widgets import Widget
from gghead_core.pipeline import LatentSpec, StyleMix

MAX_UI_SEED = 2**31 - 1  # DearPyGui integer inputs are 32-bit signed
SPACE_LABELS = {"w": "W (linear)", "z": "Z (spherical)"}


def triangle(phase: float) -> float:
    """0 -> 1 -> 0 as ``phase`` goes 0 -> 0.5 -> 1 (periodic)."""
    p = phase % 1.0
    return 2.0 * p if p < 0.5 else 2.0 * (1.0 - p)


def _seed(value, fallback: int) -> int:  # noqa: ANN001
    return int(clamp(value, 0, MAX_UI_SEED, fallback))


class LatentWidget(Widget):
    name = "latent"
    title = "Latent"

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.animate = False
        self.loop_seconds = 8.0
        self._phase = 0.0
        self.num_ws = 1
        self._rng = random.Random()
        # Style mixing as the controls show it; written into the latent (``mix``) only while enabled.
        self.mix = StyleMix(seed=2, start=0, end=1)
        self.mix_enabled = False

    @property
    def state(self) -> LatentSpec:
        return self.viewer.args.latent

    def _write(self, **changes) -> None:
        self.viewer.args.latent = replace(self.viewer.args.latent, **changes)
        self._sync_controls()

    # ---- state changes -------------------------------------------------------------------------------------

    def set_seed(self, value) -> None:  # noqa: ANN001
        self._write(seed=_seed(value, self.state.seed))

    def set_seed_b(self, value) -> None:  # noqa: ANN001
        self._write(seed_b=_seed(value, self.seed_b))

    @property
    def seed_b(self) -> int:
        return self.state.seed_b if self.state.seed_b is not None else 1

    def random_seed(self) -> None:
        self._write(seed=self._rng.randint(0, MAX_UI_SEED))

    def set_t(self, value) -> None:  # noqa: ANN001
        t = clamp(value, 0.0, 1.0, self.state.t)
        self._phase = t / 2.0  # continue an animation from here, heading toward B
        self._write(t=t)

    def set_space(self, label: str) -> None:
        space = next((k for k, v in SPACE_LABELS.items() if v == label or k == label), self.state.space)
        self._write(space=space)

    def set_animate(self, on) -> None:  # noqa: ANN001
        self.animate = bool(on)
        self._sync_controls()

    def set_loop_seconds(self, value) -> None:  # noqa: ANN001
        self.loop_seconds = clamp(value, 0.5, 120.0, self.loop_seconds)
        self._sync_controls()

    def set_mix(self, *, enabled=None, seed=None, first=None, last=None) -> None:  # noqa: ANN001
        m = self.mix
        start, end = m.start, m.end if m.end is not None else self.num_ws
        if first is not None:
            start = int(clamp(first, 0, self.num_ws - 1, start))
        if last is not None:
            end = int(clamp(last, 0, self.num_ws - 1, end - 1)) + 1
        if first is not None and end <= start:
            end = start + 1
        if last is not None and start >= end:
            start = end - 1
        self.mix = StyleMix(seed=m.seed if seed is None else _seed(seed, m.seed), start=start, end=end)
        if enabled is not None:
            self.mix_enabled = bool(enabled)
        self._write(mix=self.mix if self.mix_enabled else None)

    def on_model(self, info) -> None:  # noqa: ANN001
        self.num_ws = max(1, int(info.num_ws))
        # A new model resets the layer range to its default: fine layers (second half) from the mixing seed,
        # as in the StyleGAN papers' examples.
        self.mix = StyleMix(seed=self.mix.seed, start=self.num_ws // 2, end=self.num_ws)
        self._write(mix=self.mix if self.mix_enabled else None)
        if dpg.does_item_exist(self.tag("mix_first")):
            dpg.configure_item(self.tag("mix_first"), max_value=self.num_ws - 1)
            dpg.configure_item(self.tag("mix_last"), max_value=self.num_ws - 1)
        self._sync_controls()

    def update(self, dt: float) -> None:
        if not self.animate:
            return
        self._phase = (self._phase + max(0.0, dt) / self.loop_seconds) % 1.0
        self._write(t=triangle(self._phase))

    # ---- controls ------------------------------------------------------------------------------------------

    def build(self) -> None:
        s = self.state
        with dpg.group(horizontal=True):
            dpg.add_input_int(label="seed", tag=self.tag("seed"), default_value=s.seed, width=150, min_value=0,
                              max_value=MAX_UI_SEED, min_clamped=True, max_clamped=True,
                              callback=lambda _s, v: self.set_seed(v))
            dpg.add_button(label="Random", tag=self.tag("random"), callback=self.random_seed)
        dpg.add_input_int(label="seed B", tag=self.tag("seed_b"), default_value=self.seed_b, width=150, min_value=0,
                          max_value=MAX_UI_SEED, min_clamped=True, max_clamped=True,
                          callback=lambda _s, v: self.set_seed_b(v))
        dpg.add_slider_float(label="t (A->B)", tag=self.tag("t"), min_value=0.0, max_value=1.0, clamped=True,
                             default_value=s.t, callback=lambda _s, v: self.set_t(v))
        dpg.add_combo(list(SPACE_LABELS.values()), label="space", tag=self.tag("space"),
                      default_value=SPACE_LABELS[s.space], callback=lambda _s, v: self.set_space(v))
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="Animate", tag=self.tag("animate"), default_value=self.animate,
                             callback=lambda _s, v: self.set_animate(v))
            dpg.add_slider_float(label="loop s", tag=self.tag("loop"), min_value=0.5, max_value=60.0, width=120,
                                 default_value=self.loop_seconds, format="%.1f", callback=lambda _s, v: self.set_loop_seconds(v))
        dpg.add_separator()
        dpg.add_checkbox(label="Style mixing", tag=self.tag("mix"), default_value=self.mix_enabled,
                         callback=lambda _s, v: self.set_mix(enabled=v))
        dpg.add_input_int(label="mix seed", tag=self.tag("mix_seed"), default_value=self.mix.seed, width=150, min_value=0,
                          max_value=MAX_UI_SEED, min_clamped=True, max_clamped=True,
                          callback=lambda _s, v: self.set_mix(seed=v))
        dpg.add_slider_int(label="first layer", tag=self.tag("mix_first"), min_value=0, max_value=max(0, self.num_ws - 1),
                           clamped=True, callback=lambda _s, v: self.set_mix(first=v))
        dpg.add_slider_int(label="last layer", tag=self.tag("mix_last"), min_value=0, max_value=max(0, self.num_ws - 1),
                           clamped=True, callback=lambda _s, v: self.set_mix(last=v))
        self.viewer.register_text_input(self.tag("seed"), self.tag("seed_b"), self.tag("mix_seed"))
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("seed")):
            return
        s = self.state
        dpg.set_value(self.tag("seed"), s.seed)
        dpg.set_value(self.tag("seed_b"), self.seed_b)
        dpg.set_value(self.tag("t"), s.t)
        dpg.set_value(self.tag("space"), SPACE_LABELS[s.space])
        dpg.set_value(self.tag("animate"), self.animate)
        dpg.set_value(self.tag("loop"), self.loop_seconds)
        m = self.mix
        dpg.set_value(self.tag("mix"), self.mix_enabled)
        dpg.set_value(self.tag("mix_seed"), m.seed)
        dpg.set_value(self.tag("mix_first"), m.start)
        dpg.set_value(self.tag("mix_last"), max(m.start, (m.end if m.end is not None else self.num_ws) - 1))
