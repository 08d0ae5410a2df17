"""The full-information table: every arm run on every window once, timed, cached.

A trace lets policies be scored exactly: each (window, arm) outcome is measured once, and a
replay then shows each policy only the outcome of the arm it chose. The table also keeps
every window's features and every arm's probe (with what each cost), so a replay can charge
a policy for exactly the features it read.

A window that stores a uniform sample of its dirty pages (``Window.dirty_pages``) is scored
at its true size: its bytes and times are the sample's, scaled by dirty pages per stored
page. Features and probes are not scaled: they read a sample of the window, online too.

Timing is noisy on a shared machine: each arm encodes each window ``repeats`` times,
interleaved across arms, and the medians are kept with their spread; only the codec calls
are timed. Ratios do not vary and come from the first run. :meth:`Table.modelled` replaces
every time by a calibrated cost model's (:mod:`migcodec.selector.costmodel`), for
comparisons that give the same numbers on every run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from migcodec.codecs import Batch, Codec, DestinationMirror
from migcodec.codecs.zero import zero_page_rows
from migcodec.datasets import Window
from migcodec.selector.arms import Arm
from migcodec.selector.costmodel import FEATURES_LABEL, ArmCost, CostModel, machine_cost_model
from migcodec.selector.features import CONTEXT_NAMES, FeatureExtractor, WindowFeatures
from migcodec.selector.objectives import Objective, Outcome

TABLE_VERSION = 2
_ARRAYS = (
    "input_bytes",
    "output_bytes",
    "wall_s",
    "cpu_s",
    "device_s",
    "context",
    "predicted_ratio",
    "predicted_rate",
    "cheap_s",
    "probe_s",
)
#: arrays a table built by :func:`build_table` also has (a hand-made table may omit them)
_WORK_ARRAYS = (
    "cpu_spread",  # (windows, arms): (max - min) / median of the repeats' CPU times
    "stored_out",  # (windows, arms): output bytes of the stored pages, unscaled
    "pages",  # (windows,): pages dirtied in the window (its true size)
    "stored",  # (windows,): pages stored (and encoded)
    "zero_pages",  # (windows,): zero pages among those stored
    "sample",  # (windows,): pages the cheap features read
    "held_frac",  # (windows,): share of sampled non-zero pages the destination holds
    "delta_bytes",  # (windows, arms): a delta arm's predicted payload per held page
    "probe_pages",  # (windows,): non-zero pages each probe encoded
    "probe_out",  # (windows, arms): bytes each probe wrote
)


class TableError(ValueError):
    """A table file is missing, stale or unreadable; rebuild it (delete the file)."""


@dataclass
class Table:
    """Outcomes ``(windows, arms)`` and features per window; rewards are computed on demand
    so one table serves every objective, link speed and worker count."""

    arms: list[dict]
    input_bytes: np.ndarray
    output_bytes: np.ndarray
    wall_s: np.ndarray
    cpu_s: np.ndarray
    device_s: np.ndarray
    context: np.ndarray
    predicted_ratio: np.ndarray
    predicted_rate: np.ndarray
    cheap_s: np.ndarray
    probe_s: np.ndarray
    phases: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    cpu_spread: np.ndarray | None = None
    stored_out: np.ndarray | None = None
    pages: np.ndarray | None = None
    stored: np.ndarray | None = None
    zero_pages: np.ndarray | None = None
    sample: np.ndarray | None = None
    held_frac: np.ndarray | None = None
    delta_bytes: np.ndarray | None = None
    probe_pages: np.ndarray | None = None
    probe_out: np.ndarray | None = None

    @property
    def n_windows(self) -> int:
        return int(self.input_bytes.shape[0])

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def labels(self) -> list[str]:
        return [Arm.of(a).label for a in self.arms]

    @property
    def kinds(self) -> list[str]:
        return list(self.meta.get("kinds") or ["compress"] * self.n_arms)

    def rewards(self, objective: Objective, extra_s: np.ndarray | float = 0.0) -> np.ndarray:
        """``(windows, arms)`` rewards; ``extra_s`` (per window) is added to encode time."""
        extra = np.asarray(extra_s, dtype=float)
        if extra.ndim == 1:
            extra = extra[:, None]
        return objective.reward_arrays(
            self.input_bytes,
            self.output_bytes,
            self.wall_s + extra,
            self.cpu_s + extra,
            self.device_s,
        )

    @property
    def page_size(self) -> int:
        return int(self.meta.get("page_size", 4096))

    def costs(self) -> list[ArmCost | None]:
        """Each arm's cost model as calibrated where the table was built (``None`` where
        the table holds none): what a policy that predicts CPU time starts from."""
        saved = self.meta.get("costs") or {}
        return [ArmCost(**saved[label]) if label in saved else None for label in self.labels]

    def features(self, w: int) -> WindowFeatures:
        f = WindowFeatures(
            self.context[w],
            self.predicted_ratio[w],
            self.predicted_rate[w],
            float(self.cheap_s[w]),
            self.probe_s[w],
            pages=float(self.input_bytes[w, 0]) / self.page_size,
        )
        if self.pages is not None:
            f.sample = int(self.sample[w])
            f.held_frac = float(self.held_frac[w])
            delta = self.delta_bytes[w]
            f.delta_bytes = delta if np.isfinite(delta).any() else None  # none was estimated
            f.probe_pages = int(self.probe_pages[w])
            f.probe_out = self.probe_out[w]
        return f

    def spread(self) -> np.ndarray:
        """Per arm, the median over windows of its timings' spread between repeats."""
        if self.cpu_spread is None:
            return np.full(self.n_arms, np.nan)
        return np.nanmedian(self.cpu_spread, axis=0)

    def modelled(self, model: CostModel) -> Table:
        """This table with every time replaced by ``model``'s: encode CPU (and wall) time
        per (window, arm), probe and cheap-feature costs. Output bytes, features and probe
        results are unchanged; emulated hardware keeps its modelled device time."""
        if self.pages is None:
            raise TableError("this table holds no work counts to model; rebuild it")
        page_size, batch = self.page_size, model.batch_pages
        scale = self.pages / self.stored
        calls = np.ceil(self.pages / batch)
        nz = self.stored - self.zero_pages
        cpu = np.empty_like(self.cpu_s)
        probe = np.zeros_like(self.probe_s)
        for i, label in enumerate(self.labels):
            cost = model.arm(label)
            payload = self.stored_out[:, i] - self.stored - np.ceil(self.stored / batch) * 12
            cpu[:, i] = cost.cpu_arrays(
                calls,
                nz * scale,
                np.maximum(payload, 1.0) * scale,
                self.zero_pages * scale,
                page_size,
            )
            probed = np.isfinite(self.probe_out[:, i]) & (self.probe_pages > 0)
            if probed.any():
                probe[probed, i] = cost.cpu_arrays(
                    1.0,
                    self.probe_pages[probed],
                    self.probe_out[probed, i],
                    0.0,
                    page_size,
                )
        features = model.arm(FEATURES_LABEL)
        cheap = features.per_call + features.per_page[0] * self.sample
        fields = {name: getattr(self, name) for name in (*_ARRAYS, *_WORK_ARRAYS)}
        fields.update(cpu_s=cpu, wall_s=cpu.copy(), probe_s=probe, cheap_s=cheap)
        meta = {**self.meta, "cost_model": {"machine": model.machine, "created": model.created}}
        return Table(list(self.arms), phases=list(self.phases), meta=meta, **fields)

    def outcome(self, w: int, arm: int) -> Outcome:
        device = self.device_s[w, arm]
        return Outcome(
            float(self.input_bytes[w, arm]),
            float(self.output_bytes[w, arm]),
            float(self.wall_s[w, arm]),
            float(self.cpu_s[w, arm]),
            None if np.isnan(device) else float(device),
        )

    # -- files -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        meta = {**self.meta, "version": TABLE_VERSION, "arms": self.arms, "phases": self.phases}
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update(
            {name: getattr(self, name) for name in _WORK_ARRAYS if getattr(self, name) is not None}
        )
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Table:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in _ARRAYS}
                arrays.update({name: data[name] for name in _WORK_ARRAYS if name in data})
        except (OSError, KeyError, ValueError) as exc:
            raise TableError(
                f"cannot read evaluation table {path}: {exc}; delete it to rebuild"
            ) from exc
        if meta.get("version") != TABLE_VERSION:
            raise TableError(
                f"table {path} has version {meta.get('version')}, expected "
                f"{TABLE_VERSION}; delete it to rebuild"
            )
        return cls(meta.pop("arms"), phases=meta.pop("phases"), meta=meta, **arrays)


def encode_window(codec: Codec, window: Window, batch_pages: int) -> Outcome:
    """Encode a window's pages in ``batch_pages``-page batches on this thread, as one
    worker would; return the summed measurements (CPU time of the codec calls only)."""
    pages = window.pages
    n = pages.shape[0]
    # the window is encoded as window-local memory: its rows are its page numbers, and the
    # destination holds ``previous`` for them (nothing, without it: every page falls back)
    destination = None
    if codec.reads_destination and window.previous is not None:
        destination = DestinationMirror.holding(np.arange(n, dtype=np.int64), window.previous)
    out = wall = cpu = 0.0
    device: float | None = None
    clock = time.thread_time
    for first in range(0, n, batch_pages):  # one iteration per batch, not per page
        batch = Batch(pages, [(first, min(batch_pages, n - first))], window.page_size, batch_pages)
        # the window's CPU time is read around each call: per-batch stats.cpu_s is sampled
        # (one encode in several reads the clock), right for a stream's totals but not exact
        # per call, and a clock around the loop would also time the loop
        cpu0 = clock()
        stats = codec.encode(batch, destination=destination).stats
        cpu += clock() - cpu0
        out += stats.output_bytes
        wall += stats.wall_s
        if stats.device_s is not None:
            device = (device or 0.0) + stats.device_s
    return Outcome(float(pages.nbytes), out, wall, cpu, device)


def _touch(window: Window) -> None:
    """Read a window's pages (and previous) once, so the first arm timed is not the only
    one that pays for bringing them into cache."""
    np.bitwise_xor.reduce(np.ascontiguousarray(window.pages).view(np.uint64), axis=None)
    if window.previous is not None:
        np.bitwise_xor.reduce(np.ascontiguousarray(window.previous).view(np.uint64), axis=None)


def build_table(
    windows: Iterable[Window],
    arms: list[Arm],
    repeats: int = 3,
    batch_pages: int = 64,
    sample_pages: int = 32,
    progress: Callable[[int], None] | None = None,
    probe_pages: int = 32,
    calibration: CostModel | None = None,
) -> Table:
    """Run every arm on every window (streamed: windows are not kept).

    ``calibration`` is the cost model stored with the table as each arm's prior for
    policies that predict CPU time (by default this machine's, calibrated when missing).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    codecs = [a.codec for a in arms]
    extractor = FeatureExtractor(
        codecs, sample_pages=sample_pages, batch_pages=batch_pages, probe_pages=probe_pages
    )
    rows: dict[str, list] = {name: [] for name in (*_ARRAYS, *_WORK_ARRAYS)}
    phases: list[str] = []
    k = len(arms)
    page_size = None
    for window in windows:
        if window.n_pages == 0:
            continue
        page_size = window.page_size
        scale = window.scale
        if calibration is None:
            calibration = machine_cost_model(arms, page_size, batch_pages)
        _touch(window)  # every arm then finds the pages equally warm in cache
        walls = np.zeros((repeats, k))
        cpus = np.zeros((repeats, k))
        out = np.zeros(k)
        device = np.full(k, np.nan)
        for r in range(repeats):
            for i in np.roll(np.arange(k), -r):  # rotate: no arm always reads cold pages
                o = encode_window(codecs[i], window, batch_pages)
                walls[r, i], cpus[r, i] = o.wall_s, o.cpu_s
                if r == 0:
                    out[i] = o.output_bytes
                    device[i] = np.nan if o.device_s is None else o.device_s
        if not phases:  # first window: warm caches and lazy imports outside the timings
            extractor.extract(window.pages, window.previous, probe=True)
        runs = [
            extractor.extract(
                window.pages, window.previous, probe=True, window_pages=window.dirty_pages
            )
            for _ in range(repeats)
        ]
        feats = runs[0]
        feats.cheap_s = float(np.median([f.cheap_s for f in runs]))
        feats.probe_s = np.median([f.probe_s for f in runs], axis=0)
        feats.predicted_rate = np.median([f.predicted_rate for f in runs], axis=0)
        cpu = np.median(cpus, axis=0)
        zero = zero_page_rows(window.pages)
        rows["input_bytes"].append(np.full(k, float(window.nbytes) * scale))
        rows["output_bytes"].append(out * scale)
        rows["wall_s"].append(np.median(walls, axis=0) * scale)
        rows["cpu_s"].append(cpu * scale)
        rows["device_s"].append(device * scale)
        rows["context"].append(feats.context)
        rows["predicted_ratio"].append(feats.predicted_ratio)
        rows["predicted_rate"].append(feats.predicted_rate)
        rows["cheap_s"].append(feats.cheap_s)
        rows["probe_s"].append(feats.probe_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows["cpu_spread"].append((cpus.max(axis=0) - cpus.min(axis=0)) / cpu)
        rows["stored_out"].append(out)
        rows["pages"].append(float(window.dirty_pages or window.n_pages))
        rows["stored"].append(float(window.n_pages))
        rows["zero_pages"].append(0.0 if zero is None else float(np.count_nonzero(zero)))
        rows["sample"].append(float(feats.sample))
        rows["held_frac"].append(feats.held_frac)
        rows["delta_bytes"].append(
            np.full(k, np.nan) if feats.delta_bytes is None else feats.delta_bytes
        )
        rows["probe_pages"].append(float(feats.probe_pages))
        rows["probe_out"].append(feats.probe_out)
        phases.append(window.phase or "")
        if progress is not None:
            progress(len(phases))
    if not phases:
        raise TableError("no windows with pages to evaluate: the trace or workload is empty")
    arrays = {name: np.asarray(v, dtype=float) for name, v in rows.items()}
    meta = {
        "repeats": repeats,
        "batch_pages": batch_pages,
        "sample_pages": sample_pages,
        "probe_pages": probe_pages,
        "page_size": page_size,
        "kinds": [c.kind for c in codecs],
        "paths": [c.probe_path() for c in codecs],
        "context_names": list(CONTEXT_NAMES),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "costs": {a.label: asdict(calibration.arm(a.label)) for a in arms},
    }
    return Table([a.get_config() for a in arms], phases=phases, meta=meta, **arrays)


def table_key(
    source: str,
    arms: list[Arm],
    repeats: int,
    batch_pages: int,
    sample_pages: int,
    probe_pages: int = 32,
) -> str:
    """Cache key of a table: the window source's identity and everything that shaped it."""
    text = json.dumps(
        [
            source,
            [a.get_config() for a in arms],
            repeats,
            batch_pages,
            sample_pages,
            probe_pages,
            TABLE_VERSION,
        ],
        sort_keys=True,
    )
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def cached_table(
    path: Path | None, build: Callable[[], Table], rebuild: bool = False
) -> tuple[Table, bool]:
    """Load the table at ``path`` or build and save it there; ``(table, was_cached)``."""
    if path is not None and path.exists() and not rebuild:
        return Table.load(path), True
    table = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        table.save(path)
    return table, False
