"""Timeline panel: keyframes of latent + camera, playback with a scrub slider, video export, JSON save/load.

"Add keyframe" stores the current latent (everything the Latent and Truncation panels set) and camera at the
playhead's time. Keys are listed with their time: edit the time to move a key, pick its ease, "Go" jumps to it
(the exact key state, editable), "Set" replaces it with the current state, "Del" deletes it.

Playback and scrubbing show the timeline's own frames. Between keys the head is a blend of the keys' ws that no
``LatentSpec`` can spell, so the panel writes a :class:`app.state.TimelinePreview` (timeline + time) into the
render arguments and the sampled ``CameraSpec`` into the camera; the worker draws the preview with the same
sampler as the export, so what plays is what the video shows. Editing the latent ends the preview (the edit is
what you see); "Go" ends it on a key. Export runs the CLI's ``timeline`` job in the background (progress,
cancel, replayable recipe); "Save"/"Load" read and write the JSON file the CLI renders.

The key list logic lives in :class:`TimelineEditor` (no DearPyGui), so it is tested without a display.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.capture import TimelineOptions
from app.state import TimelinePreview, clamp
from app.widgets import CaptureProgress, Widget
from gghead_core import (
    EASES,
    LATENT_INTERPS,
    Keyframe,
    SpecError,
    Timeline,
    load_timeline,
    one_line,
    save_timeline,
)
from gghead_core.pipeline import CameraSpec, LatentSpec

EXPORT_RESOLUTIONS = ("64", "128", "256", "512", "1024")
NEXT_KEY_GAP_S = 1.0  # after "Add keyframe" the playhead moves this far past the last key
MAX_UI_FPS = 120.0
ERROR_COLOR = (255, 110, 110)
OK_COLOR = (170, 220, 170)
SNAP_S = 1e-6


@dataclass
class TimelineEditor:
    """The keys being edited and the playhead. Every change builds a :class:`Timeline` first, so an edit that
    would make an invalid one (two keys at one time, too many frames) raises ``SpecError`` and changes nothing."""

    keys: list[Keyframe] = field(default_factory=list)
    fps: float = 24.0
    loop: bool = False
    latent_interp: str = "cubic"
    duration_s: float | None = None
    time_s: float = 0.0
    playing: bool = False
    repeat: bool = True  # playback starts over at the end

    def timeline(self) -> Timeline | None:
        return self._build(self.keys) if self.keys else None

    def _build(self, keys: list[Keyframe], **changes) -> Timeline:  # noqa: ANN003
        opts = {"fps": self.fps, "loop": self.loop, "latent_interp": self.latent_interp,
                "duration_s": self.duration_s, **changes}
        return Timeline(tuple(sorted(keys, key=lambda k: k.time_s)), **opts)

    def _commit(self, keys: list[Keyframe], **changes) -> None:  # noqa: ANN003
        if keys:
            tl = self._build(keys, **changes)
            self.keys = list(tl.keyframes)
        else:
            self.keys = []
        for name, value in changes.items():
            setattr(self, name, value)

    @property
    def length_s(self) -> float:
        tl = self.timeline()
        return 0.0 if tl is None else tl.length_s

    def index_at(self, t: float) -> int | None:
        return next((i for i, k in enumerate(self.keys) if abs(k.time_s - t) <= SNAP_S), None)

    def add(self, latent: LatentSpec, camera: CameraSpec) -> int:
        """Store ``latent`` and ``camera`` at the playhead (replacing a key already there); returns its index."""
        t = max(0.0, float(self.time_s))
        i = self.index_at(t)
        keys = list(self.keys)
        if i is not None:
            keys[i] = replace(keys[i], latent=latent, camera=camera)
        else:
            keys.append(Keyframe(t, latent, camera))
        self._commit(keys, duration_s=None if self.duration_s is None or self.duration_s <= t else self.duration_s)
        return next(j for j, k in enumerate(self.keys) if k.time_s == t)

    def move(self, index: int, time_s: float) -> int:
        keys = list(self.keys)
        keys[index] = replace(keys[index], time_s=time_s)
        self._commit(keys, duration_s=None)
        return next(j for j, k in enumerate(self.keys) if k.time_s == keys[index].time_s)

    def replace_key(self, index: int, latent: LatentSpec, camera: CameraSpec) -> None:
        keys = list(self.keys)
        keys[index] = replace(keys[index], latent=latent, camera=camera)
        self._commit(keys)

    def set_ease(self, index: int, ease: str) -> None:
        keys = list(self.keys)
        keys[index] = replace(keys[index], ease=ease)
        self._commit(keys)

    def delete(self, index: int) -> None:
        keys = list(self.keys)
        del keys[index]
        self._commit(keys, duration_s=None)

    def set_options(self, **changes) -> None:  # noqa: ANN003
        """fps, loop, latent_interp (validated by building the timeline)."""
        self._commit(list(self.keys), **changes)

    def load(self, timeline: Timeline) -> None:
        self.keys = list(timeline.keyframes)
        self.fps, self.loop = timeline.fps, timeline.loop
        self.latent_interp, self.duration_s = timeline.latent_interp, timeline.duration_s
        self.time_s, self.playing = 0.0, False

    def advance(self, dt: float) -> None:
        """Move the playhead by ``dt`` seconds of playback; at the end start over (``repeat``) or stop."""
        if not self.playing or not self.keys:
            self.playing = self.playing and bool(self.keys)
            return
        end = self.length_s
        t = self.time_s + max(0.0, float(dt))
        if t >= end:
            if self.repeat and end > 0:
                t = t % end if self.loop else (0.0 if self.time_s >= end else end)
                # Without a closed path the last frame (the last key) is shown once before starting over.
            else:
                t, self.playing = end, False
        self.time_s = t


class TimelineWidget(Widget):
    name = "timeline"
    title = "Timeline"
    default_open = False

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.editor = TimelineEditor()
        self.options = TimelineOptions()
        self.message = ""
        self.message_is_error = False
        self.path = ""
        self._preview_latent: LatentSpec | None = None  # args.latent when the preview started
        self._progress = CaptureProgress(self.tag, self._say)
        self._registered_rows = 0  # key-time inputs already registered as text inputs

    # ---- state ---------------------------------------------------------------------------------------------

    @property
    def previewing(self) -> bool:
        return self.viewer.args.timeline is not None

    def _edit(self, fn, *args, **kwargs) -> bool:  # noqa: ANN001, ANN002, ANN003
        """Run an editor change; a refused one becomes the panel's message."""
        try:
            fn(*args, **kwargs)
        except SpecError as exc:
            self._say(one_line(exc), error=True)
            self._rebuild_rows()  # the rows show the unchanged keys again, not the refused value
            return False
        self._rebuild_rows()
        self._sync_controls()
        return True

    def add_keyframe(self) -> bool:
        """Store the current latent + camera at the playhead, then move the playhead past the last key."""
        args = self.viewer.args
        t = self.editor.time_s
        if not self._edit(self.editor.add, args.latent, args.camera):
            return False
        self.editor.time_s = self.editor.keys[-1].time_s + NEXT_KEY_GAP_S
        args.timeline = None  # the view shows what was stored, not a preview at the old time
        self._say(f"keyframe at {t:.2f} s; next at {self.editor.time_s:.2f} s")
        self._sync_controls()
        return True

    def move_key(self, index: int, time_s) -> bool:  # noqa: ANN001
        t = clamp(time_s, 0.0, 1e5, self.editor.keys[index].time_s)
        ok = self._edit(self.editor.move, index, t)
        self._refresh_preview()
        return ok

    def replace_key(self, index: int) -> bool:
        """Replace key ``index`` with the current latent + camera."""
        args = self.viewer.args
        ok = self._edit(self.editor.replace_key, index, args.latent, args.camera)
        if ok:
            self._say(f"keyframe {index} replaced")
        return ok

    def set_ease(self, index: int, ease: str) -> bool:
        ok = self._edit(self.editor.set_ease, index, ease)
        self._refresh_preview()
        return ok

    def delete_key(self, index: int) -> bool:
        ok = self._edit(self.editor.delete, index)
        self._refresh_preview()
        return ok

    def jump_to(self, index: int) -> None:
        """Show key ``index`` exactly: its latent and camera become the current state (editable), preview ends."""
        key = self.editor.keys[index]
        self.editor.playing = False
        self.editor.time_s = key.time_s
        args = self.viewer.args
        args.timeline = None
        args.latent, args.camera = key.latent, key.camera
        self._show_latent_and_camera()
        self._sync_controls()

    def set_time(self, t) -> None:  # noqa: ANN001
        """Scrub: show the timeline's frame at ``t``."""
        self.editor.time_s = clamp(t, 0.0, max(self.editor.length_s, 0.0), self.editor.time_s)
        self._preview()
        self._sync_controls()

    def toggle_play(self) -> None:
        ed = self.editor
        if not ed.keys:
            self._say("add a keyframe first", error=True)
            return
        if not ed.playing and ed.time_s >= ed.length_s and not ed.loop:
            ed.time_s = 0.0
        ed.playing = not ed.playing
        self._preview()
        self._sync_controls()

    def set_option(self, key: str, value) -> None:  # noqa: ANN001
        ed = self.editor
        if key == "repeat":
            ed.repeat = bool(value)
        elif key == "loop":
            self._edit(ed.set_options, loop=bool(value))
        elif key == "fps":
            fps = float(clamp(value, 1.0, MAX_UI_FPS, ed.fps))
            if self._edit(ed.set_options, fps=fps):
                self.options = replace(self.options, fps=fps)
        elif key == "latent_interp" and value in LATENT_INTERPS:
            self._edit(ed.set_options, latent_interp=value)
        elif key == "resolution" and str(value) in EXPORT_RESOLUTIONS:
            self.options = replace(self.options, resolution=int(value))
        elif key == "format" and value in ("mp4", "gif"):
            self.options = replace(self.options, format=value)
        elif key == "path":
            self.path = str(value).strip()
        self._refresh_preview()
        self._sync_controls()

    # ---- preview -------------------------------------------------------------------------------------------

    def _preview(self) -> None:
        tl = self.editor.timeline()
        args = self.viewer.args
        if tl is None:
            args.timeline = None
            return
        t = self.editor.time_s
        args.timeline = TimelinePreview(tl, t)
        args.camera = tl.camera_at(t)
        self._preview_latent = args.latent
        self._show_latent_and_camera(latent=False)

    def _refresh_preview(self) -> None:
        """After an edit of the keys: a running preview shows the edited timeline."""
        if self.previewing:
            self._preview()

    def _show_latent_and_camera(self, latent: bool = True) -> None:
        v = self.viewer
        if latent and hasattr(v, "latent"):
            lw = v.latent
            mix = v.args.latent.mix
            lw.mix_enabled = mix is not None
            if mix is not None:
                lw.mix = mix
            lw._sync_controls()
            if hasattr(v, "truncation"):
                v.truncation._sync_controls()
        if hasattr(v, "camera"):
            v.camera._sync_controls()

    # ---- export, save, load --------------------------------------------------------------------------------

    def export(self) -> bool:
        """Render the timeline into ``timeline_NNNN.mp4|gif`` in the background (progress, cancel)."""
        tl = self.editor.timeline()
        if tl is None:
            self._say("add a keyframe first", error=True)
            return False
        error = self.viewer.capture_timeline(tl, self.options)
        if error:
            self._say(error, error=True)
            return False
        self._say("timeline export ...")
        return True

    def cancel(self) -> None:
        self.viewer.captures.cancel()

    def default_path(self) -> Path:
        return self.viewer.output_dir / "timeline.json"

    def save(self) -> bool:
        tl = self.editor.timeline()
        if tl is None:
            self._say("nothing to save: add a keyframe first", error=True)
            return False
        path = Path(self.path).expanduser() if self.path else self.default_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_timeline(path, tl)
        except (OSError, ValueError) as exc:
            self._say(f"save failed: {one_line(exc)}", error=True)
            return False
        self.path = str(path)
        self._say(f"saved {path}")
        self._sync_controls()
        return True

    def load(self) -> bool:
        path = Path(self.path).expanduser() if self.path else self.default_path()
        try:
            tl = load_timeline(path)
        except SpecError as exc:
            self._say(one_line(exc), error=True)
            return False
        self.editor.load(tl)
        self.options = replace(self.options, fps=tl.fps)
        self.path = str(path)
        self._rebuild_rows()
        self.jump_to(0)
        self._say(f"loaded {len(tl.keyframes)} keyframes from {path}")
        return True

    # ---- frame loop ----------------------------------------------------------------------------------------

    def update(self, dt: float) -> None:
        args = self.viewer.args
        if self.previewing and args.latent != self._preview_latent:
            args.timeline = None  # the user edited the latent: show the edit
            self.editor.playing = False
            self._sync_controls()
        if self.editor.playing:
            self.editor.advance(dt)
            self._preview()
            self._sync_controls()
        self._update_export()

    def _update_export(self) -> None:
        st = self.viewer.captures.status
        if st is not None and st.kind == "timeline":
            self._progress.update(st, counter="frame", name="timeline export")

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message, self.message_is_error = text, error
        if dpg.does_item_exist(self.tag("message")):
            dpg.configure_item(self.tag("message"), color=ERROR_COLOR if error else OK_COLOR)
            dpg.set_value(self.tag("message"), text)

    # ---- controls ------------------------------------------------------------------------------------------

    def build(self) -> None:
        opt = lambda key: (lambda _s, v: self.set_option(key, v))  # noqa: E731
        with dpg.group(horizontal=True):
            dpg.add_button(label="Add keyframe", tag=self.tag("add"), callback=self.add_keyframe)
            dpg.add_button(label="Play", tag=self.tag("play"), width=50, callback=self.toggle_play)
            dpg.add_checkbox(label="repeat", tag=self.tag("repeat"), default_value=self.editor.repeat,
                             callback=opt("repeat"))
        dpg.add_slider_float(label="time", tag=self.tag("time"), min_value=0.0, max_value=1.0, width=250,
                             format="%.2f s", callback=lambda _s, v: self.set_time(v))
        dpg.add_group(tag=self.tag("keys"))
        with dpg.group(horizontal=True):
            dpg.add_input_float(label="fps", tag=self.tag("fps"), width=90, default_value=self.editor.fps, step=0,
                                format="%.2f", on_enter=True, callback=opt("fps"))
            dpg.add_checkbox(label="closed loop", tag=self.tag("loop"), callback=opt("loop"))
        dpg.add_combo(list(LATENT_INTERPS), label="latent (W)", tag=self.tag("latent_interp"), width=90,
                      default_value=self.editor.latent_interp, callback=opt("latent_interp"))
        with dpg.group(horizontal=True):
            dpg.add_combo(list(EXPORT_RESOLUTIONS), label="res", tag=self.tag("resolution"), width=70,
                          default_value=str(self.options.resolution), callback=opt("resolution"))
            dpg.add_combo(["mp4", "gif"], label="format", tag=self.tag("format"), width=60,
                          default_value=self.options.format, callback=opt("format"))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Export video", tag=self.tag("export"), callback=self.export)
            dpg.add_button(label="Cancel", tag=self.tag("cancel"), enabled=False, callback=self.cancel)
        dpg.add_progress_bar(tag=self.tag("progress"), width=-1, default_value=0.0)
        dpg.add_input_text(label="file", tag=self.tag("path"), width=250, hint="timeline.json in the capture folder",
                           callback=opt("path"))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Save", tag=self.tag("save"), callback=self.save)
            dpg.add_button(label="Load", tag=self.tag("load"), callback=self.load)
        dpg.add_text("", tag=self.tag("message"), wrap=340)
        self.viewer.register_text_input(self.tag("fps"), self.tag("path"))
        self._rebuild_rows()
        self._sync_controls()

    def _rebuild_rows(self) -> None:
        """One row per key: time (edit to move), ease, Go / Set / Del."""
        if not dpg.does_item_exist(self.tag("keys")):
            return
        dpg.delete_item(self.tag("keys"), children_only=True)
        if not self.editor.keys:
            dpg.add_text("no keyframes yet", parent=self.tag("keys"), color=(150, 150, 150))
        for i, k in enumerate(self.editor.keys):
            with dpg.group(horizontal=True, parent=self.tag("keys")):
                dpg.add_text(f"{i}")
                dpg.add_input_float(tag=self.tag(f"key{i}.time"), width=70, default_value=k.time_s, step=0,
                                    format="%.2f", on_enter=True, user_data=i,
                                    callback=lambda _s, v, i: self.move_key(i, v))
                dpg.add_combo(list(EASES), tag=self.tag(f"key{i}.ease"), width=110, default_value=k.ease,
                              user_data=i, callback=lambda _s, v, i: self.set_ease(i, v))
                dpg.add_button(label="Go", tag=self.tag(f"key{i}.jump"), user_data=i,
                               callback=lambda _s, _v, i: self.jump_to(i))
                dpg.add_button(label="Set", tag=self.tag(f"key{i}.replace"), user_data=i,
                               callback=lambda _s, _v, i: self.replace_key(i))
                dpg.add_button(label="Del", tag=self.tag(f"key{i}.delete"), user_data=i,
                               callback=lambda _s, _v, i: self.delete_key(i))
        n = len(self.editor.keys)
        if n > self._registered_rows:
            self.viewer.register_text_input(*(self.tag(f"key{i}.time") for i in range(self._registered_rows, n)))
            self._registered_rows = n

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("time")):
            return
        ed = self.editor
        dpg.configure_item(self.tag("time"), max_value=max(ed.length_s, 0.01))
        dpg.set_value(self.tag("time"), ed.time_s)
        dpg.configure_item(self.tag("play"), label="Pause" if ed.playing else "Play")
        dpg.set_value(self.tag("repeat"), ed.repeat)
        dpg.set_value(self.tag("loop"), ed.loop)
        if not dpg.is_item_active(self.tag("fps")):
            dpg.set_value(self.tag("fps"), ed.fps)
        dpg.set_value(self.tag("latent_interp"), ed.latent_interp)
        dpg.set_value(self.tag("resolution"), str(self.options.resolution))
        dpg.set_value(self.tag("format"), self.options.format)
        if not dpg.is_item_active(self.tag("path")):
            dpg.set_value(self.tag("path"), self.path)
