"""Latent directions of a model: principal components of W (GANSpace-style) and user-defined directions.

Why PCA of W: StyleGAN-family mapping networks put the main modes of variation (pose-like turns, age, hair,
lighting) on the few directions along which W varies most, so the top principal components make useful
sliders without any labels. An edit moves ``ws`` along a direction by ``amount`` standard deviations
(:class:`gghead_core.pipeline.LatentEdit`); :func:`directions_for` gives the vectors already scaled to one
standard deviation, which is what :func:`gghead_core.pipeline.apply_edits` expects.

How the statistics are made (so a replay elsewhere recomputes the same directions within rounding):
``samples`` latents z are drawn from a CPU ``torch.Generator`` seeded with :data:`PCA_SEED` in batches of
:data:`BATCH` (the same z on every machine), mapped with psi = 1 and the frontal label, and their mean and
covariance accumulated in float64 on the CPU. The components are the eigenvectors of the covariance
(``torch.linalg.eigh``), largest eigenvalue first, each with its sign fixed (largest-magnitude entry
positive), so the same statistics always give the same vectors. On one machine the whole computation is
bit-identical run to run (tested), so a recipe with edits replays to the same pixels even if the cache is
deleted in between.

Custom directions: the mean W of seeds "with X" minus the mean W of seeds "without X", normalised, scaled by
the standard deviation of W projected on it (``sqrt(u^T C u)`` with the covariance ``C`` above).

Cache: one file per checkpoint, keyed by the checkpoint's sha256, beside the viewer's settings:
``$XDG_CONFIG_HOME/gghead-viewer/directions/<sha256>.safetensors`` (``~/.config`` when unset;
``%APPDATA%`` on Windows), written atomically, holding the statistics, the components and the custom
directions with their seed lists. Generators built in memory (no sha256) are computed without caching.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gghead_core.vocabulary import MAX_SEED, SpecError

DEFAULT_SAMPLES = 20_000
MIN_SAMPLES = 100
MAX_SAMPLES = 10_000_000
NUM_COMPONENTS = 20
BATCH = 1000  # fixed: a different batch size rounds the mapping's matmuls differently
PCA_SEED = 20240613  # fixed: the z of every machine's PCA are the same numbers
FORMAT = "gghead-directions/1"
APP_DIR_NAME = "gghead-viewer"  # the same folder as app/settings.py's (gghead_core must not import app)
MAX_NAME_LENGTH = 40
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_PC_RE = re.compile(r"^pc(\d+)$")

ProgressFn = Callable[[int, int], None]


class DirectionsError(RuntimeError):
    """Directions cannot be computed, read or defined (one-line message)."""


class DirectionsCancelled(Exception):
    """The computation was cancelled through its ``cancel`` event."""


@dataclass(frozen=True)
class CustomDirection:
    """A user-named direction: mean W of ``with_seeds`` minus mean W of ``without_seeds``."""

    name: str
    with_seeds: tuple[int, ...]
    without_seeds: tuple[int, ...]
    unit: torch.Tensor  # [w_dim] float64, unit length
    std: float  # standard deviation of W projected on ``unit``


@dataclass(frozen=True)
class DirectionSet:
    """Everything known about one model's directions (what the cache file holds)."""

    checkpoint_sha256: str  # "" for a generator built in memory
    samples: int
    seed: int
    mean: torch.Tensor  # [w_dim] float64
    covariance: torch.Tensor  # [w_dim, w_dim] float64
    components: torch.Tensor  # [K, w_dim] float64, orthonormal rows, largest variance first
    variances: torch.Tensor  # [K] float64 eigenvalues (std = sqrt)
    total_variance: float  # trace of the covariance
    custom: tuple[CustomDirection, ...] = ()
    cache_note: str = ""  # why the set could not be written to the cache ("" when it was, or needs not be)

    @property
    def w_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def stds(self) -> torch.Tensor:
        return self.variances.clamp_min(0).sqrt()  # [K]

    @property
    def explained(self) -> torch.Tensor:
        """Fraction of W's total variance along each component ``[K]``."""
        return self.variances / self.total_variance if self.total_variance > 0 else torch.zeros_like(self.variances)

    @property
    def pc_names(self) -> list[str]:
        return [f"pc{i}" for i in range(self.num_components)]

    @property
    def names(self) -> list[str]:
        return self.pc_names + [c.name for c in self.custom]

    def custom_named(self, name: str) -> CustomDirection | None:
        return next((c for c in self.custom if c.name == name), None)

    def vector(self, name: str) -> torch.Tensor:
        """``[w_dim]`` float32 CPU vector of ``name`` scaled to one standard deviation (KeyError if unknown)."""
        m = _PC_RE.match(name)
        if m and int(m.group(1)) < self.num_components and str(int(m.group(1))) == m.group(1):
            i = int(m.group(1))
            return (self.components[i] * self.variances[i].clamp_min(0).sqrt()).to(torch.float32)
        c = self.custom_named(name)
        if c is None:
            raise KeyError(name)
        return (c.unit * c.std).to(torch.float32)

    def vectors(self, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """``{name: [w_dim] float32}`` for ``names`` that exist (all of them when None)."""
        wanted = self.names if names is None else list(names)
        out: dict[str, torch.Tensor] = {}
        for n in wanted:
            try:
                out[n] = self.vector(n)
            except KeyError:
                pass
        return out


# --------------------------------------------------------------------------------------------------------------
# Computing
# --------------------------------------------------------------------------------------------------------------


def _tick(progress: ProgressFn | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DirectionsCancelled("computing directions was cancelled")


def _map_w(G: Any, z: torch.Tensor) -> torch.Tensor:
    """``W [B, w_dim]`` float64 on the CPU: psi = 1, frontal label (every ws row is the same before truncation)."""
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=1.0)  # [B, num_ws, w_dim]
    return ws[:, 0].to("cpu", torch.float64)


def w_statistics(
    G: Any,
    samples: int = DEFAULT_SAMPLES,
    *,
    seed: int = PCA_SEED,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[w_dim]`` and covariance ``[w_dim, w_dim]`` (float64) of W over ``samples`` seeded latents.

    Accumulated batch by batch around the first batch's mean (no catastrophic cancellation in float64, and
    memory independent of ``samples``).
    """
    samples = _check_samples(samples)
    gen = torch.Generator("cpu").manual_seed(int(seed))
    w_dim = int(G.w_dim)
    shift = torch.zeros(w_dim, dtype=torch.float64)
    s1 = torch.zeros(w_dim, dtype=torch.float64)
    s2 = torch.zeros(w_dim, w_dim, dtype=torch.float64)
    done = 0
    _tick(progress, 0, samples)
    while done < samples:
        _check_cancel(cancel)
        n = min(BATCH, samples - done)
        z = torch.randn(n, int(G.z_dim), generator=gen)  # [n, z_dim], CPU: the same numbers on every machine
        w = _map_w(G, z.to(G.device))  # [n, w_dim]
        if done == 0:
            shift = w.mean(0)
        d = w - shift
        s1 += d.sum(0)
        s2 += d.T @ d
        done += n
        _tick(progress, done, samples)
    m = s1 / samples
    cov = (s2 - samples * torch.outer(m, m)) / max(1, samples - 1)
    cov = 0.5 * (cov + cov.T)  # exactly symmetric for eigh
    return shift + m, cov


def principal_components(cov: torch.Tensor, k: int = NUM_COMPONENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` unit eigenvectors ``[k, w_dim]`` (largest variance first, sign fixed) and variances ``[k]``."""
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    k = min(int(k), int(cov.shape[0]))
    order = torch.arange(cov.shape[0] - 1, cov.shape[0] - 1 - k, -1)
    comps = evecs[:, order].T.contiguous()  # [k, w_dim]
    idx = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(k), idx])
    signs[signs == 0] = 1.0
    comps = comps * signs[:, None]
    return comps, evals[order].clamp_min(0)


def compute_directions(
    G: Any,
    samples: int = DEFAULT_SAMPLES,
    *,
    seed: int = PCA_SEED,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    custom_specs: Sequence[tuple[str, Sequence[int], Sequence[int]]] = (),
) -> DirectionSet:
    """PCA of W for ``G`` (no cache involved); ``custom_specs`` (name, with, without) are recomputed on top."""
    mean, cov = w_statistics(G, samples, seed=seed, progress=progress, cancel=cancel)
    comps, variances = principal_components(cov)
    ds = DirectionSet(
        checkpoint_sha256=_sha(G), samples=int(samples), seed=int(seed), mean=mean, covariance=cov,
        components=comps, variances=variances, total_variance=float(torch.trace(cov)),
    )
    for name, with_seeds, without_seeds in custom_specs:
        ds = _with_custom(ds, make_custom(G, ds, name, with_seeds, without_seeds))
    return ds


def parse_seeds(text: str, what: str = "seeds") -> list[int]:
    """Seeds as typed (``1,5,9`` or ``10-19``) -> a list; a bad text is one :class:`DirectionsError` line."""
    from gghead_core.latents import parse_seed_list

    try:
        return parse_seed_list(str(text).strip())
    except ValueError as exc:
        raise DirectionsError(f"{what}: {exc}") from None


def _seed_tuple(seeds: Sequence[int], what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in seeds)
    except (TypeError, ValueError):
        raise DirectionsError(f"{what} must be seeds (integers), got {seeds!r}") from None
    if not out:
        raise DirectionsError(f"{what} needs at least one seed")
    bad = [s for s in out if not 0 <= s <= MAX_SEED]
    if bad:
        raise DirectionsError(f"{what}: seed {bad[0]} is outside 0..{MAX_SEED}")
    return out


def check_custom_name(name: Any) -> str:
    """A custom direction's name: letters, digits, ``_ . -``, starting with a letter or ``_``; not ``pcN``."""
    if not isinstance(name, str) or not name.strip():
        raise DirectionsError("a custom direction needs a name")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.match(name):
        raise DirectionsError(
            f"direction name {name!r} must be 1-{MAX_NAME_LENGTH} letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'"
        )
    if _PC_RE.match(name):
        raise DirectionsError(f"direction name {name!r} is reserved for principal components; choose another")
    return name


def make_custom(G: Any, ds: DirectionSet, name: str, with_seeds: Sequence[int],
                without_seeds: Sequence[int]) -> CustomDirection:
    """The custom direction ``name`` (mean W with - mean W without, normalised; std from ``ds``'s covariance)."""
    name = check_custom_name(name)
    a = _seed_tuple(with_seeds, f"direction {name!r}: the 'with' seeds")
    b = _seed_tuple(without_seeds, f"direction {name!r}: the 'without' seeds")
    if sorted(set(a)) == sorted(set(b)):
        raise DirectionsError(f"direction {name!r}: the 'with' and 'without' seeds are the same set")
    wa = _map_w(G, torch.cat([G.z_from_seed(s) for s in a]))  # [len(a), w_dim]
    wb = _map_w(G, torch.cat([G.z_from_seed(s) for s in b]))  # [len(b), w_dim]
    diff = wa.mean(0) - wb.mean(0)
    norm = float(diff.norm())
    if not norm > 1e-12:
        raise DirectionsError(f"direction {name!r}: the two seed sets have the same mean W (no direction)")
    unit = diff / norm
    std = float((unit @ ds.covariance @ unit).clamp_min(0).sqrt())
    return CustomDirection(name=name, with_seeds=a, without_seeds=b, unit=unit, std=std)


def _with_custom(ds: DirectionSet, c: CustomDirection) -> DirectionSet:
    kept = tuple(x for x in ds.custom if x.name != c.name)
    return DirectionSet(**{**_fields(ds), "custom": kept + (c,)})


def _fields(ds: DirectionSet) -> dict[str, Any]:
    return {f: getattr(ds, f) for f in ds.__dataclass_fields__}


def _check_samples(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or not MIN_SAMPLES <= samples <= MAX_SAMPLES:
        raise DirectionsError(f"samples must be an integer from {MIN_SAMPLES} to {MAX_SAMPLES:,}, got {samples!r}")
    return samples


def _sha(G: Any) -> str:
    try:
        return str(getattr(G, "checkpoint_sha256", "") or "")
    except OSError:  # the checkpoint file vanished since loading: treat as in-memory
        return ""


# --------------------------------------------------------------------------------------------------------------
# Cache files
# --------------------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``<settings folder>/directions`` (the viewer's settings folder, see :mod:`app.settings`)."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"]) / APP_DIR_NAME
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME") or ""
        base = (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config") / APP_DIR_NAME
    return base / "directions"


def cache_path(sha256: str, cache_dir: str | os.PathLike | None = None) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise DirectionsError(f"not a sha256 checksum: {sha256!r}")
    return Path(cache_dir if cache_dir is not None else cache_root()) / f"{sha256}.safetensors"


def save_directions(ds: DirectionSet, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {
        "mean": ds.mean.contiguous(),
        "covariance": ds.covariance.contiguous(),
        "components": ds.components.contiguous(),
        "variances": ds.variances.contiguous(),
        "total_variance": torch.tensor([ds.total_variance], dtype=torch.float64),
    }
    custom_meta = []
    for i, c in enumerate(ds.custom):
        tensors[f"custom.{i}.unit"] = c.unit.contiguous()
        tensors[f"custom.{i}.std"] = torch.tensor([c.std], dtype=torch.float64)
        custom_meta.append({"name": c.name, "with": list(c.with_seeds), "without": list(c.without_seeds)})
    meta = {
        "format": FORMAT,
        "checkpoint_sha256": ds.checkpoint_sha256,
        "samples": str(ds.samples),
        "seed": str(ds.seed),
        "batch": str(BATCH),
        "custom": json.dumps(custom_meta),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".directions-", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise DirectionsError(f"cannot write directions cache {str(path)!r}: {exc.strerror or exc}") from None
    return path


def read_directions(path: str | os.PathLike, w_dim: int | None = None) -> DirectionSet:
    """Read a cache file; anything unexpected is one :class:`DirectionsError` line naming the file."""
    from safetensors import safe_open

    path = Path(path)
    fix = "delete it or run 'main.py directions --recompute'"
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise DirectionsError(f"directions cache {str(path)!r} is unreadable ({exc}); {fix}") from None
    try:
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        mean, cov, comps, var = t["mean"], t["covariance"], t["components"], t["variances"]
        d = int(mean.shape[0])
        if w_dim is not None and d != int(w_dim):
            raise ValueError(f"w_dim {d}, but the model's is {w_dim}")
        if cov.shape != (d, d) or comps.dim() != 2 or comps.shape[1] != d or var.shape != (comps.shape[0],):
            raise ValueError("tensor shapes disagree")
        custom = []
        for i, c in enumerate(json.loads(meta.get("custom", "[]"))):
            unit = t[f"custom.{i}.unit"]
            if unit.shape != (d,):
                raise ValueError(f"custom direction {i} has shape {tuple(unit.shape)}")
            custom.append(CustomDirection(name=check_custom_name(c["name"]),
                                          with_seeds=tuple(int(s) for s in c["with"]),
                                          without_seeds=tuple(int(s) for s in c["without"]), unit=unit,
                                          std=float(t[f"custom.{i}.std"][0])))
        return DirectionSet(
            checkpoint_sha256=str(meta.get("checkpoint_sha256", "")), samples=int(meta["samples"]),
            seed=int(meta["seed"]), mean=mean, covariance=cov, components=comps, variances=var,
            total_variance=float(t["total_variance"][0]), custom=tuple(custom),
        )
    except (KeyError, ValueError, TypeError, IndexError, DirectionsError) as exc:
        raise DirectionsError(f"directions cache {str(path)!r} is invalid ({exc}); {fix}") from None


# --------------------------------------------------------------------------------------------------------------
# Per-model access (memo + cache + compute), thread-safe
# --------------------------------------------------------------------------------------------------------------

_LOCK = threading.RLock()  # one computation at a time: the viewer's panel and its render worker share results
# G -> (directions, cache file they belong to, its mtime then): valid while the file is the same one, unchanged.
_MEMO: weakref.WeakKeyDictionary[Any, tuple[DirectionSet, Path | None, int | None]] = weakref.WeakKeyDictionary()


def _mtime(path: Path | None) -> int | None:
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


def _path_for(G: Any, cache_dir: str | os.PathLike | None) -> Path | None:
    sha = _sha(G)
    return cache_path(sha, cache_dir) if sha else None


def cached_directions(G: Any, cache_dir: str | os.PathLike | None = None) -> DirectionSet | None:
    """The directions already known for ``G`` (memory or cache file), without computing; None if none."""
    path = _path_for(G, cache_dir)
    with _LOCK:
        memo = _MEMO.get(G)
        if memo is not None and (path is None or (memo[1] == path and memo[2] == _mtime(path))):
            return memo[0]
        if path is None or not path.is_file():
            return None
        try:
            ds = read_directions(path, int(G.w_dim))
        except FileNotFoundError:
            return None
        _MEMO[G] = (ds, path, _mtime(path))
        return ds


def _store(G: Any, ds: DirectionSet, cache_dir: str | os.PathLike | None) -> DirectionSet:
    """Write the cache and remember ``ds``; an unwritable settings folder costs the cache, not the result
    (kept in memory for this process, with ``cache_note`` saying why)."""
    path = _path_for(G, cache_dir)
    ds = DirectionSet(**{**_fields(ds), "cache_note": ""})
    if path is not None:
        try:
            save_directions(ds, path)
        except DirectionsError as exc:
            ds = DirectionSet(**{**_fields(ds), "cache_note": str(exc)})
            _MEMO[G] = (ds, path, _mtime(path))
            return ds
    _MEMO[G] = (ds, path, _mtime(path))
    return ds


def load_or_compute(
    G: Any,
    *,
    samples: int = DEFAULT_SAMPLES,
    recompute: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> DirectionSet:
    """``G``'s directions: from memory or its cache file, else computed (and cached when ``G`` has a sha256).

    ``recompute`` computes again with ``samples`` and replaces the cache; custom directions are kept and
    recomputed from their seed lists. Without it, a cached set is returned whatever its sample count.
    """
    _check_samples(samples)
    with _LOCK:
        old = None
        try:
            old = cached_directions(G, cache_dir)
        except DirectionsError:
            if not recompute:
                raise
        if old is not None and not recompute:
            return old
        specs = [(c.name, c.with_seeds, c.without_seeds) for c in (old.custom if old else ())]
        ds = compute_directions(G, samples, progress=progress, cancel=cancel, custom_specs=specs)
        return _store(G, ds, cache_dir)


def add_custom_direction(
    G: Any,
    name: str,
    with_seeds: Sequence[int],
    without_seeds: Sequence[int],
    *,
    replace_existing: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> DirectionSet:
    """Define (and save) a custom direction for ``G``; computes the PCA statistics first when needed."""
    name = check_custom_name(name)
    with _LOCK:
        ds = load_or_compute(G, progress=progress, cancel=cancel, cache_dir=cache_dir)
        if ds.custom_named(name) is not None and not replace_existing:
            raise DirectionsError(f"a direction named {name!r} already exists for this model; choose another name")
        return _store(G, _with_custom(ds, make_custom(G, ds, name, with_seeds, without_seeds)), cache_dir)


def remove_custom_direction(G: Any, name: str, *, cache_dir: str | os.PathLike | None = None) -> DirectionSet:
    with _LOCK:
        ds = cached_directions(G, cache_dir)
        if ds is None or ds.custom_named(name) is None:
            raise DirectionsError(f"no custom direction named {name!r} for this model")
        kept = tuple(c for c in ds.custom if c.name != name)
        return _store(G, DirectionSet(**{**_fields(ds), "custom": kept}), cache_dir)


def directions_for(
    G: Any, names: Iterable[str] | None = None, *, cache_dir: str | os.PathLike | None = None
) -> Mapping[str, torch.Tensor]:
    """``{name: [w_dim] float32}`` scaled to one standard deviation, for ``names`` (all when None); the PCA is
    computed (and cached) on first use. An unknown name is a :class:`SpecError` saying where names come from."""
    ds = load_or_compute(G, cache_dir=cache_dir)
    wanted = None if names is None else list(names)
    out = ds.vectors(wanted)
    missing = sorted({n for n in (wanted or ()) if n not in out})
    if missing:
        custom = f" and the custom {', '.join(c.name for c in ds.custom)}" if ds.custom else ""
        raise SpecError(
            f"unknown latent direction(s) {', '.join(missing)} for this model: it has pc0..pc{ds.num_components - 1}"
            f"{custom}; custom directions live in the per-checkpoint cache (define one with "
            "'main.py directions --add NAME --with SEEDS --without SEEDS')"
        )
    return out


def forget(G: Any) -> None:
    """Drop the in-memory copy for ``G`` (tests; the cache file stays)."""
    with _LOCK:
        _MEMO.pop(G, None)


__all__ = [
    "DEFAULT_SAMPLES",
    "NUM_COMPONENTS",
    "CustomDirection",
    "DirectionSet",
    "DirectionsCancelled",
    "DirectionsError",
    "add_custom_direction",
    "cache_path",
    "cache_root",
    "cached_directions",
    "compute_directions",
    "directions_for",
    "load_or_compute",
    "parse_seeds",
    "principal_components",
    "read_directions",
    "remove_custom_direction",
    "save_directions",
    "w_statistics",
]

