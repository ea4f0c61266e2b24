"""Truncation panel: psi (-1..2, default 0.7), cutoff (how many ws rows are truncated) and the noise mode.

Cutoff follows StyleGAN's ``truncation_cutoff``: rows ``[0, cutoff)`` are pulled toward ``w_avg``; the slider's
maximum (all rows) is sent as ``None``, which is the official default.
"""

from __future__ import annotations

from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.state import DEFAULT_LATENT, MAX_PSI, MIN_PSI, clamp
from app.widgets import Widget
from gghead_core.pipeline import NOISE_MODES, LatentSpec

DEFAULT_PSI = DEFAULT_LATENT.psi


class TruncationWidget(Widget):
    name = "truncation"
    title = "Truncation & noise"

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.num_ws = 1

    @property
    def state(self) -> LatentSpec:
        return self.viewer.args.latent

    def _write(self, **changes) -> None:
        self.viewer.args.latent = replace(self.viewer.args.latent, **changes)
        self._sync_controls()

    def set_psi(self, value) -> None:  # noqa: ANN001
        self._write(psi=round(clamp(value, MIN_PSI, MAX_PSI, self.state.psi), 6))

    def set_cutoff(self, value) -> None:  # noqa: ANN001
        rows = int(clamp(value, 0, self.num_ws, self.num_ws))
        self._write(cutoff=None if rows >= self.num_ws else rows)

    def set_noise_mode(self, value) -> None:  # noqa: ANN001
        self._write(noise_mode=value if value in NOISE_MODES else self.state.noise_mode)

    def reset(self) -> None:
        self._write(psi=DEFAULT_PSI, cutoff=None, noise_mode="const")

    def on_model(self, info) -> None:  # noqa: ANN001
        # The cutoff counts this model's ws rows: a value chosen for another model means nothing here, so a
        # new model starts from the official default (all rows truncated).
        self.num_ws = max(1, int(info.num_ws))
        if self.state.cutoff is not None:
            self._write(cutoff=None)
        if dpg.does_item_exist(self.tag("cutoff")):
            dpg.configure_item(self.tag("cutoff"), max_value=self.num_ws)
        self._sync_controls()

    def build(self) -> None:
        dpg.add_slider_float(label="psi", tag=self.tag("psi"), min_value=MIN_PSI, max_value=MAX_PSI, clamped=True,
                             default_value=self.state.psi, format="%.2f", callback=lambda _s, v: self.set_psi(v))
        dpg.add_slider_int(label="cutoff", tag=self.tag("cutoff"), min_value=0, max_value=self.num_ws, clamped=True,
                           default_value=self.num_ws, callback=lambda _s, v: self.set_cutoff(v))
        dpg.add_combo(list(NOISE_MODES), label="noise", tag=self.tag("noise"), default_value=self.state.noise_mode,
                      callback=lambda _s, v: self.set_noise_mode(v))
        dpg.add_button(label="Reset", tag=self.tag("reset"), callback=self.reset)
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("psi")):
            return
        s = self.state
        dpg.set_value(self.tag("psi"), s.psi)
        dpg.set_value(self.tag("cutoff"), self.num_ws if s.cutoff is None else s.cutoff)
        dpg.set_value(self.tag("noise"), s.noise_mode)
        is_default = s.psi == DEFAULT_PSI and s.cutoff is None and s.noise_mode == "const"
        dpg.configure_item(self.tag("reset"), enabled=not is_default)
