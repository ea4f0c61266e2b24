"""A tiny built-in 5x7 bitmap font for labels on images (``grid --labels``), in numpy: no font files, no new
dependency, the same pixels on every machine.

Only the characters labels need are drawn (digits, a few letters, signs); anything else becomes a hollow box,
so a label never fails. Glyphs are our own, drawn on a 5x7 grid.
"""

from __future__ import annotations

import numpy as np

GLYPH_W, GLYPH_H = 5, 7

_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": (".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."),
    "a": (".....", ".....", ".###.", "....#", ".####", "#...#", ".####"),
    "d": ("....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"),
    "e": (".....", ".....", ".###.", "#...#", "#####", "#....", ".###."),
    "i": ("..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."),
    "p": (".....", ".....", "####.", "#...#", "####.", "#....", "#...."),
    "s": (".....", ".....", ".####", "#....", ".###.", "....#", "####."),
    "t": (".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."),
    "c": (".....", ".....", ".###.", "#....", "#....", "#...#", ".###."),
    "h": ("#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "w": (".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."),
    "y": (".....", ".....", "#...#", "#...#", ".####", "....#", ".###."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    "+": (".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    " ": (".....",) * 7,
}
_BOX = ("#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####")


def _glyph(ch: str) -> np.ndarray:
    rows = _GLYPHS.get(ch, _GLYPHS.get(ch.lower(), _BOX))
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)  # [7, 5]


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """Boolean ``[H, W]`` mask of ``text`` (lines split at ``\\n``), one pixel gap between glyphs and lines,
    each font pixel ``scale`` x ``scale`` image pixels."""
    lines = text.split("\n")
    cols = max((len(line) for line in lines), default=0)
    h = len(lines) * (GLYPH_H + 1) - 1
    w = max(0, cols * (GLYPH_W + 1) - 1)
    mask = np.zeros((h, w), dtype=bool)
    for i, line in enumerate(lines):
        for j, ch in enumerate(line):
            y, x = i * (GLYPH_H + 1), j * (GLYPH_W + 1)
            mask[y:y + GLYPH_H, x:x + GLYPH_W] = _glyph(ch)
    s = max(1, int(scale))
    return np.repeat(np.repeat(mask, s, axis=0), s, axis=1)


def draw_label(image: np.ndarray, text: str, *, scale: int | None = None, margin: int | None = None) -> None:
    """Write ``text`` in white on a darkened box in the top-left corner of ``image [H, W, 3|4]`` uint8, in place.

    The box keeps the label readable on any background (white, black, a head); with an alpha channel the box
    and the text are made opaque so a transparent PNG still shows them. ``scale`` defaults to one font pixel
    per 128 image pixels (at least 1); text that does not fit is clipped.
    """
    h, w = image.shape[:2]
    s = max(1, min(h, w) // 128) if scale is None else max(1, int(scale))
    m = 2 * s if margin is None else int(margin)
    mask = text_mask(text, s)
    pad = s
    bh, bw = min(h - m, mask.shape[0] + 2 * pad), min(w - m, mask.shape[1] + 2 * pad)
    if bh <= 0 or bw <= 0:
        return
    box = image[m:m + bh, m:m + bw]
    box[..., :3] = (box[..., :3].astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40%
    if image.shape[-1] == 4:
        box[..., 3] = 255
    inner = mask[: max(0, bh - pad), : max(0, bw - pad)]
    region = box[pad:pad + inner.shape[0], pad:pad + inner.shape[1]]
    region[inner, :3] = 255
