"""Directions panel: GANSpace-style sliders along the principal components of W, and custom directions.

Each slider moves the head along one direction in units of its standard deviation (-5..5); the amounts live
in the latent itself (``LatentSpec.edits``), so they combine with seed, interpolation, truncation and style
mixing, and screenshots/turntables record them in their recipes (``main.py replay`` redraws them; the CLI
spells them ``--edit pc2=+2.5@0-6``). Each direction has its own layer range (all ws rows by default): moving
a slider selects it, and the "first/last layer" sliders edit the selected direction's range (inclusive rows,
as in the style-mixing controls).

The directions are computed once per checkpoint and cached (:mod:`gghead_core.directions`). Computing runs on
a background thread with a progress bar and never blocks the UI; errors are shown here in red. The render
worker resolves the same directions on its own thread (``make_ws`` -> ``directions_for``, memoised), so the
panel hands it nothing but the edits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import dearpygui.dearpygui as dpg

from app.state import clamp
from app.widgets import Widget
from gghead_core import directions as dirs
from gghead_core import one_line
from gghead_core.pipeline import LatentEdit

MAX_AMOUNT = 5.0
ERROR_COLOR = (255, 110, 110)
DIM_COLOR = (150, 150, 150)
SLIDER_WIDTH = 170


class _Task:
    """One background computation (compute / add custom) with a progress value; the UI thread polls it."""

    def __init__(self, label: str, G: Any, fn: Callable[[dirs.ProgressFn, threading.Event], Any]) -> None:
        self.label = label
        self.G = G  # the model it works for (a result for a model no longer loaded is dropped)
        self.progress = 0.0
        self.result: Any = None
        self.error: str | None = None
        self.cancel = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn,), name=f"gghead-directions-{label}", daemon=True)
        self._thread.start()

    def _tick(self, done: int, total: int) -> None:
        self.progress = done / total if total else 1.0

    def _run(self, fn: Callable[[dirs.ProgressFn, threading.Event], Any]) -> None:
        try:
            self.result = fn(self._tick, self.cancel)
        except dirs.DirectionsCancelled:
            self.error = "cancelled"
        except Exception as exc:  # shown in the panel, never raised into the UI
            self.error = one_line(exc, with_type=not isinstance(exc, dirs.DirectionsError))
        finally:
            self.done.set()


class DirectionsWidget(Widget):
    name = "directions"
    title = "Directions"
    default_open = False

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.num_ws = 1
        self.directions: dirs.DirectionSet | None = None
        self.selected: str | None = None
        self.ranges: dict[str, tuple[int, int | None]] = {}  # layer range of a direction whose amount is 0
        self.task: _Task | None = None
        self.error = ""
        self.message = ""
        self.samples = dirs.DEFAULT_SAMPLES
        self._built_names: list[str] = []
        self._G: Any = None

    # ---- state ---------------------------------------------------------------------------------------------

    @property
    def edits(self) -> tuple[LatentEdit, ...]:
        return self.viewer.args.latent.edits

    def amount(self, name: str) -> float:
        return next((e.amount for e in self.edits if e.direction == name), 0.0)

    def layer_range(self, name: str) -> tuple[int, int | None]:
        e = next((e for e in self.edits if e.direction == name), None)
        return (e.start, e.end) if e is not None else self.ranges.get(name, (0, None))

    @property
    def names(self) -> list[str]:
        return self.directions.names if self.directions is not None else []

    def _write(self, amounts: dict[str, float], ranges: dict[str, tuple[int, int | None]]) -> None:
        """Rebuild the edits: one per direction with a non-zero amount, in the panel's order."""
        order = self.names + [e.direction for e in self.edits if e.direction not in self.names]
        edits = tuple(LatentEdit(n, amounts[n], *ranges.get(n, (0, None))) for n in order if amounts.get(n, 0.0) != 0.0)
        self.viewer.args.latent = replace(self.viewer.args.latent, edits=edits)
        self._sync_controls()

    def _current(self) -> tuple[dict[str, float], dict[str, tuple[int, int | None]]]:
        amounts = {e.direction: e.amount for e in self.edits}
        ranges = dict(self.ranges)
        ranges.update({e.direction: (e.start, e.end) for e in self.edits})
        return amounts, ranges

    def set_amount(self, name: str, value: Any) -> None:
        amounts, ranges = self._current()
        amounts[name] = round(clamp(value, -MAX_AMOUNT, MAX_AMOUNT, amounts.get(name, 0.0)), 4)
        self.selected = name
        self._write(amounts, ranges)

    def reset(self, name: str) -> None:
        amounts, ranges = self._current()
        amounts[name] = 0.0
        self._write(amounts, ranges)

    def reset_all(self) -> None:
        self.ranges.clear()
        self._write({}, {})

    def set_layers(self, *, first: Any = None, last: Any = None) -> None:
        """Inclusive first/last ws row of the selected direction (last = the final row is stored as 'to the end')."""
        name = self.selected
        if name is None:
            return
        amounts, ranges = self._current()
        start, end = ranges.get(name, (0, None))
        last_row = (self.num_ws if end is None else end) - 1
        if first is not None:
            start = int(clamp(first, 0, self.num_ws - 1, start))
            last_row = max(last_row, start)
        if last is not None:
            last_row = int(clamp(last, 0, self.num_ws - 1, last_row))
            start = min(start, last_row)
        ranges[name] = (start, None if last_row >= self.num_ws - 1 else last_row + 1)
        self.ranges[name] = ranges[name]
        self._write(amounts, ranges)

    def select(self, name: str) -> None:
        if name in self.names:
            self.selected = name
            self._sync_controls()

    # ---- background work -----------------------------------------------------------------------------------

    @property
    def generator(self) -> Any:
        gen = self.viewer.worker.latents
        return gen.G if gen is not None else None

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done.is_set()

    def _start(self, label: str, G: Any, fn: Callable[[dirs.ProgressFn, threading.Event], Any]) -> bool:
        if self.busy:
            self.error = "directions: another computation is still running"
            self._sync_controls()
            return False
        self.error = ""
        self.task = _Task(label, G, fn)
        self._sync_controls()
        return True

    def compute(self, samples: int | None = None) -> bool:
        """Compute (or load) the PCA directions in the background."""
        G = self.generator
        if G is None:
            self.error = "directions: no model loaded"
            self._sync_controls()
            return False
        n = int(samples or self.samples)

        def run(tick: dirs.ProgressFn, cancel: threading.Event) -> dirs.DirectionSet:
            try:
                return dirs.load_or_compute(G, samples=n, progress=tick, cancel=cancel)
            except dirs.DirectionsError:  # an unreadable cache file: the button repairs it by computing again
                return dirs.load_or_compute(G, samples=n, recompute=True, progress=tick, cancel=cancel)

        return self._start("compute", G, run)

    def add_custom(self, name: str | None = None, with_text: str | None = None,
                   without_text: str | None = None) -> bool:
        """Define a custom direction from the panel's fields (or the given values); runs in the background."""
        G = self.generator
        if dpg.does_item_exist(self.tag("custom_name")):
            name = dpg.get_value(self.tag("custom_name")) if name is None else name
            with_text = dpg.get_value(self.tag("custom_with")) if with_text is None else with_text
            without_text = dpg.get_value(self.tag("custom_without")) if without_text is None else without_text
        try:
            if G is None:
                raise ValueError("no model loaded")
            name = dirs.check_custom_name(name)
            a = dirs.parse_seeds(with_text or "", "'with' seeds")
            b = dirs.parse_seeds(without_text or "", "'without' seeds")
        except (ValueError, dirs.DirectionsError) as exc:  # ValueError: no model
            self.error = f"custom direction: {one_line(exc)}"
            self._sync_controls()
            return False
        return self._start("custom", G, lambda tick, cancel: dirs.add_custom_direction(G, name, a, b, progress=tick,
                                                                                     cancel=cancel))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel.set()

    def close(self) -> None:
        """Viewer closing: stop a computation (it checks between batches; nothing half-written is kept)."""
        if self.task is not None:
            self.task.cancel.set()
            self.task.done.wait(5.0)

    def wait(self, timeout: float = 60.0) -> bool:
        """Tests: block until the background task finished (then :meth:`update` picks up its result)."""
        return self.task is None or self.task.done.wait(timeout)

    def on_model(self, info) -> None:  # noqa: ANN001
        self.num_ws = max(1, int(info.num_ws))
        G = self.generator
        if G is not self._G:
            # Another model: its directions differ even where the names agree, so the edits go.
            self._G = G
            self.directions = None
            self.selected = None
            self.ranges.clear()
            if self.edits:
                self.viewer.args.latent = replace(self.viewer.args.latent, edits=())
            if G is not None and not self.busy:  # show cached directions at once (hashing runs in the background)
                self._start("load", G, lambda tick, cancel: dirs.cached_directions(G))
        self._sync_controls()

    def update(self, dt: float) -> None:
        t = self.task
        if t is None:
            return
        if dpg.does_item_exist(self.tag("progress")):
            dpg.set_value(self.tag("progress"), t.progress)
            dpg.configure_item(self.tag("progress"), overlay=f"{100 * t.progress:.0f} %")
        if not t.done.is_set():
            return
        self.task = None
        if t.G is not self._G:  # finished for a model that is no longer loaded: look up the current one's
            if self._G is not None:
                self._start("load", self._G, lambda tick, cancel, G=self._G: dirs.cached_directions(G))
            return
        if t.error:
            self.error = f"directions ({t.label}): {t.error}"
        elif isinstance(t.result, dirs.DirectionSet):
            self.directions = t.result
            if t.label == "custom":
                self.message = f"added direction {t.result.custom[-1].name}"
                self.selected = t.result.custom[-1].name
        self._rebuild_sliders()
        self._sync_controls()

    # ---- controls ------------------------------------------------------------------------------------------

    def build(self) -> None:
        dpg.add_text("", tag=self.tag("info"), wrap=340, color=DIM_COLOR)
        dpg.add_text("", tag=self.tag("error"), wrap=340, color=ERROR_COLOR, show=False)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Compute directions", tag=self.tag("compute"), callback=lambda: self.compute())
            dpg.add_button(label="Cancel", tag=self.tag("cancel"), callback=self.cancel, show=False)
        dpg.add_progress_bar(tag=self.tag("progress"), default_value=0.0, width=330, show=False)
        with dpg.group(tag=self.tag("sliders")):
            pass
        dpg.add_button(label="Reset all", tag=self.tag("reset_all"), callback=self.reset_all)
        dpg.add_text("", tag=self.tag("layers_label"))
        dpg.add_slider_int(label="first layer", tag=self.tag("first"), min_value=0, max_value=max(0, self.num_ws - 1),
                           clamped=True, width=200, callback=lambda _s, v: self.set_layers(first=v))
        dpg.add_slider_int(label="last layer", tag=self.tag("last"), min_value=0, max_value=max(0, self.num_ws - 1),
                           clamped=True, width=200, callback=lambda _s, v: self.set_layers(last=v))
        dpg.add_separator()
        dpg.add_text("Custom direction: mean W of seeds 'with' minus 'without'", color=DIM_COLOR, wrap=340)
        dpg.add_input_text(label="name", tag=self.tag("custom_name"), width=200, hint="e.g. smile")
        dpg.add_input_text(label="with", tag=self.tag("custom_with"), width=200, hint="seeds, e.g. 1,5,9 or 10-19")
        dpg.add_input_text(label="without", tag=self.tag("custom_without"), width=200, hint="seeds, e.g. 2,3")
        dpg.add_button(label="Add direction", tag=self.tag("custom_add"), callback=lambda: self.add_custom())
        self.viewer.register_text_input(self.tag("custom_name"), self.tag("custom_with"), self.tag("custom_without"))
        self._rebuild_sliders()
        self._sync_controls()

    def _rebuild_sliders(self) -> None:
        if not dpg.does_item_exist(self.tag("sliders")) or self._built_names == self.names:
            return
        dpg.delete_item(self.tag("sliders"), children_only=True)
        ds = self.directions
        if ds is not None:
            explained = ds.explained.tolist()
            rows = [(n, f"{n} {100 * explained[i]:.1f}%") for i, n in enumerate(ds.pc_names)]
            rows += [(c.name, c.name) for c in ds.custom]
            for name, label in rows:
                with dpg.group(horizontal=True, parent=self.tag("sliders")):
                    dpg.add_slider_float(label=label, tag=self.tag(f"amount.{name}"), min_value=-MAX_AMOUNT,
                                         max_value=MAX_AMOUNT, default_value=self.amount(name), width=SLIDER_WIDTH,
                                         format="%+.2f sd", callback=lambda _s, v, u: self.set_amount(u, v),
                                         user_data=name)
                    dpg.add_button(label="0", tag=self.tag(f"reset.{name}"), user_data=name,
                                   callback=lambda _s, _a, u: self.reset(u))
        self._built_names = list(self.names)

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("info")):
            return
        ds, busy = self.directions, self.busy
        if busy and self.task is not None and self.task.label != "load":
            info = "computing directions ..." if self.task.label == "compute" else "computing the custom direction ..."
        elif ds is None:
            info = ("not computed for this model yet: 'Compute directions' maps "
                    f"{self.samples:,} random latents and takes a PCA of W (cached per checkpoint)")
        else:
            cached = ("not cached" if ds.cache_note else "cached") if ds.checkpoint_sha256 else \
                "not cached: model built in memory"
            info = (f"{ds.num_components} components from {ds.samples:,} latents ({cached}); "
                    f"{100 * float(ds.explained.sum()):.0f}% of W's variance. Sliders in standard deviations.")
            if ds.cache_note:
                info += f"\nnot cached: {ds.cache_note}"
            if self.message:
                info += f"\n{self.message}"
        dpg.set_value(self.tag("info"), info)
        dpg.set_value(self.tag("error"), self.error)
        dpg.configure_item(self.tag("error"), show=bool(self.error))
        show_progress = busy and self.task is not None and self.task.label != "load"
        dpg.configure_item(self.tag("progress"), show=show_progress)
        dpg.configure_item(self.tag("cancel"), show=show_progress)
        dpg.configure_item(self.tag("compute"), show=ds is None and not busy)
        dpg.configure_item(self.tag("custom_add"), enabled=not busy)
        for name in self._built_names:
            if dpg.does_item_exist(self.tag(f"amount.{name}")):
                dpg.set_value(self.tag(f"amount.{name}"), self.amount(name))
                dpg.configure_item(self.tag(f"reset.{name}"), enabled=self.amount(name) != 0.0)
        dpg.configure_item(self.tag("reset_all"), enabled=bool(self.edits), show=ds is not None)
        selected = self.selected if ds is not None else None
        for t in ("first", "last", "layers_label"):
            dpg.configure_item(self.tag(t), show=selected is not None)
        if selected is not None:
            start, end = self.layer_range(selected)
            dpg.configure_item(self.tag("first"), max_value=self.num_ws - 1)
            dpg.configure_item(self.tag("last"), max_value=self.num_ws - 1)
            dpg.set_value(self.tag("layers_label"), f"layers of {selected} (inclusive, of 0..{self.num_ws - 1}):")
            dpg.set_value(self.tag("first"), start)
            dpg.set_value(self.tag("last"), (self.num_ws if end is None else end) - 1)
