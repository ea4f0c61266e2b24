"""The dataset on disk: layout, one atomic commit per head, the manifest, the final merge and the zip.

Layout of ``OUT/`` (every path below is relative to it)::

    manifest.json                   arguments + checkpoint sha256 + versions; at the end the complete seeds
    dataset.json                    {"labels": [[name, [25 floats]], ...]} in seed-list order (written last)
    dataset.zip                     with --zip: the RGB images + dataset.json (what EG3D's loader should read)
    GGGGGGG/SSSSSSSSSS/             one folder per head: group = seed // 1000 (7 digits), seed (10 digits)
        img_VV.png                  view VV: RGB (RGBA with --background transparent)
        mask_VV.png                 --alpha: 8-bit alpha (255 = head, 0 = background)
        depth_VV.png | depth_VV.npy --depth png: 16-bit, value x depth_scale = depth; npy: float32; 0 = no hit
        gaussians.ply               --ply: the head's Gaussians as a standard 3DGS PLY
        transforms.json             --transforms: nerfstudio cameras of this head (OpenGL camera axes)
        head.json                   the head's labels and camera angles (the merge reads these)
    .staging/                       per-process temp folders (hidden; emptied at the start of every run)

A head is written into ``.staging/<process>/SSSSSSSSSS/`` and then *renamed* to its final folder in one
``rename(2)`` (atomic on a POSIX filesystem): a head folder is complete or absent, never partial, whatever
process is killed when. If the final folder already exists (another process finished the same head), the
copy is dropped, so a head is never written twice. ``dataset.json`` and ``dataset.zip`` are built once, by
rank 0 after every rank finished, from the head folders (temp file + ``os.replace``).

Why per-head label files rather than per-rank label lists: a rank killed between committing a head and
appending its labels would leave a per-rank list that disagrees with the folders; labels that live inside the
head's own atomic folder cannot.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import shutil
import socket
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gghead_core.export import OutputError
from gghead_core.latents import format_seed_list
from gghead_core.vocabulary import one_line

MANIFEST_NAME = "manifest.json"
DATASET_JSON = "dataset.json"
DATASET_ZIP = "dataset.zip"
STAGING = ".staging"
LOCK_NAME = ".lock"
HEAD_JSON = "head.json"
MANIFEST_FORMAT = "gghead-sample-manifest"
MANIFEST_VERSION = 1
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same dataset gives the same zip bytes


class DatasetError(OutputError):
    """The output folder cannot take this dataset (another job's folder, a foreign folder, a broken head)."""


# --------------------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------------------


def head_rel(seed: int) -> str:
    """``GGGGGGG/SSSSSSSSSS``: groups of 1000 heads keep folders listable at millions of heads."""
    return f"{seed // 1000:07d}/{seed:010d}"


def image_name(view: int) -> str:
    return f"img_{view:02d}.png"


def mask_name(view: int) -> str:
    return f"mask_{view:02d}.png"


def depth_name(view: int, fmt: str) -> str:
    return f"depth_{view:02d}.{fmt}"


def depth_png_scale(radius: float) -> float:
    """Scene units per step of a 16-bit depth PNG: the smallest power of ten whose 65535 steps reach past
    ``radius + 2`` (the head lies within 2 units of the origin). Radius 2.7 gives 1e-4 (0.1 mm if a head
    were 25 cm wide), radius 10 gives 1e-3."""
    return float(10.0 ** math.ceil(math.log10((radius + 2.0) / 65535.0)))


def compress_seeds(seeds: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (sorted): the manifest's complete set in a few bytes."""
    return format_seed_list(sorted(set(int(s) for s in seeds)))


# --------------------------------------------------------------------------------------------------------------
# Small file writers (deterministic bytes)
# --------------------------------------------------------------------------------------------------------------


def dumps(data: Any) -> str:
    """Stable JSON: sorted keys where the writer does not care, no NaN, trailing newline."""
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, dumps(data))


def write_text_atomic(path: Path, text: str) -> None:
    """``path`` is replaced in one step (temp file in the same folder + ``os.replace``)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_gray_png(path: Path, image: np.ndarray) -> None:
    """``[H, W]`` uint8 or uint16 as a single-channel PNG (8- or 16-bit)."""
    import imageio.v3 as iio

    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"grey PNG must be [H, W] uint8/uint16, got {image.shape} {image.dtype}")
    iio.imwrite(os.fspath(path), np.ascontiguousarray(image), extension=".png")


# --------------------------------------------------------------------------------------------------------------
# The folder: lock, manifest, staging, head commits
# --------------------------------------------------------------------------------------------------------------


@dataclass
class DatasetFolder:
    """The output folder of one dataset; rank 0 prepares and finishes it, every rank commits heads into it."""

    root: Path

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def head_dir(self, seed: int) -> Path:
        return self.root / head_rel(seed)

    # -- rank 0, before any head is written --------------------------------------------------------------
    def prepare(self, record: dict[str, Any]) -> None:
        """Create the folder or check it is this dataset's: the manifest's ``arguments`` and checkpoint sha256
        must equal ``record``'s (one-sentence DatasetError otherwise). Empties the staging area."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise DatasetError(f"output {os.fspath(root)!r} is a file, not a folder")
        if self.manifest_path.is_file():
            self.check_manifest(record)
        elif root.is_dir() and any(p.name not in (STAGING, LOCK_NAME) for p in root.iterdir()):
            raise DatasetError(
                f"folder {os.fspath(root)!r} is not empty and holds no {MANIFEST_NAME}; sample writes into a new "
                "or empty folder, or resumes one it made"
            )
        else:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatasetError(f"cannot create folder {os.fspath(root)!r}: {exc.strerror or exc}") from None
            write_json_atomic(self.manifest_path, {**record, "status": "in progress"})
        shutil.rmtree(root / STAGING, ignore_errors=True)

    def check_manifest(self, record: dict[str, Any]) -> None:
        try:
            have = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read {os.fspath(self.manifest_path)!r}: {one_line(exc)}") from None
        if not isinstance(have, dict) or have.get("format") != MANIFEST_FORMAT:
            raise DatasetError(f"{os.fspath(self.manifest_path)!r} is not a gghead sample manifest")
        if have.get("checkpoint", {}).get("sha256") != record["checkpoint"]["sha256"]:
            raise DatasetError(
                f"folder {os.fspath(self.root)!r} holds a dataset of another checkpoint (sha256 "
                f"{str(have.get('checkpoint', {}).get('sha256'))[:12]}...); use a new folder for this one"
            )
        old, new = have.get("arguments", {}), record["arguments"]
        if old != new:
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
            raise DatasetError(
                f"folder {os.fspath(self.root)!r} holds a dataset made with other arguments ({shown}); rerun the "
                "same command to complete it, or write into a new folder"
            )

    def lock(self) -> Any:
        """An exclusive advisory lock for the run (rank 0 holds it): a second job on this folder is refused."""
        import fcntl

        fh = open(self.root / LOCK_NAME, "a+b")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise DatasetError(f"another sample job is writing into {os.fspath(self.root)!r}") from None
        return fh

    # -- every rank ---------------------------------------------------------------------------------------
    def complete_seeds(self, seeds: Sequence[int]) -> set[int]:
        """Seeds whose head folder exists (a folder only appears by an atomic rename, so it is complete)."""
        wanted = set(int(s) for s in seeds)
        done: set[int] = set()
        groups = {s // 1000 for s in wanted}
        for g in groups:
            gdir = self.root / f"{g:07d}"
            try:
                entries = list(os.scandir(gdir))
            except FileNotFoundError:
                continue
            for e in entries:
                if e.is_dir() and len(e.name) == 10 and e.name.isdigit() and int(e.name) in wanted:
                    done.add(int(e.name))
        return done

    def staging(self) -> HeadStaging:
        return HeadStaging(self)

    # -- rank 0, after every rank finished -------------------------------------------------------------------
    def merge(self, seeds: Sequence[int], record: dict[str, Any], *, make_zip: bool, world_size: int = 1) -> int:
        """Write ``dataset.json`` (labels of every head, in seed-list order), the final manifest and, with
        ``make_zip``, ``dataset.zip``. Returns the number of labels. Raises DatasetError when a head is missing."""
        missing = [s for s in seeds if not (self.head_dir(s) / HEAD_JSON).is_file()]
        if missing:
            raise DatasetError(
                f"{len(missing)} head(s) are missing after the run (first: seed {missing[0]}); run the same "
                "command again to complete them"
                + (" (every node must see the same output folder, e.g. on NFS)" if world_size > 1 else "")
            )
        labels: list[list[Any]] = []
        for s in seeds:
            head = json.loads((self.head_dir(s) / HEAD_JSON).read_text(encoding="utf-8"))
            labels.extend(head["labels"])
        body = ",\n".join(json.dumps(item, allow_nan=False) for item in labels)
        write_text_atomic(self.root / DATASET_JSON, '{"labels": [\n' + body + "\n]}\n")  # one label per line
        if make_zip:
            self._write_zip([name for name, _ in labels])
        manifest = {**record, "status": "complete",
                    "complete_seeds": compress_seeds(seeds), "num_heads": len(seeds), "num_images": len(labels)}
        write_json_atomic(self.manifest_path, manifest)
        return len(labels)

    def _write_zip(self, names: Sequence[str]) -> None:
        """EG3D's loader reads a zip of images + dataset.json; it lists every image file, so only the RGB
        images go in (masks and depth PNGs would be taken for training images)."""
        final = self.root / DATASET_ZIP
        tmp = self.root / f".{DATASET_ZIP}.{secrets.token_hex(4)}.partial"
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for name in [DATASET_JSON, *names]:
                    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, (self.root / name).read_bytes())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


class HeadStaging:
    """One process's temp area: ``begin(seed)`` gives a folder to fill, ``commit(seed)`` renames it into place."""

    def __init__(self, folder: DatasetFolder) -> None:
        self.folder = folder
        self.dir = folder.root / STAGING / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def begin(self, seed: int) -> Path:
        tmp = self.dir / f"{seed:010d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        return tmp

    def commit(self, seed: int) -> bool:
        """Move the filled folder to its final place in one rename. False when the head already existed (the
        copy is dropped: no duplicate, and the existing complete head is left as it is)."""
        tmp = self.dir / f"{seed:010d}"
        final = self.folder.head_dir(seed)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
        return True

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()  # the shared .staging folder, when this was the last process using it
        except OSError:
            pass
