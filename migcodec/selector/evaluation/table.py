"""The full-information table: every arm run on every window once, timed, cached.

Each (window, arm) outcome is measured once; a replay then shows each policy only the
outcome of the arm it chose, and charges it for exactly the features and probes it read
(the table keeps every window's features and every arm's probe, with their costs).

A window that stores a sample of its dirty pages (``Window.dirty_pages``) is scored at its
true size: bytes and times are scaled by dirty pages per stored page. Features and probes
are not scaled: they read a sample online too.

Each arm encodes each window ``repeats`` times, interleaved across the arms, and the median
time is kept with its spread (only codec calls are timed); ratios come from the first run,
whose output is decoded back (one batch in :data:`CHECK_EVERY`) and must give the pages
byte for byte: a codec that writes less than its pages need is refused, not scored as
every window's best arm.
:meth:`Table.modelled` replaces every time by a calibrated cost model's, for comparisons
that repeat exactly.

A table is measured in parts (:func:`measure_windows`) joined in window order
(:func:`join_parts`): :func:`build_table` is one part of every arm over every window, and a
cluster measures one part per range and arm with the same two functions.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from migcodec.codecs import Batch, Codec, CodecKind, DestinationMirror
from migcodec.codecs.bounded import codec_watch, run_bounded
from migcodec.codecs.roundtrip import check_round_trip, failures_of
from migcodec.datasets import Window
from migcodec.datasets.trace.schema import MANIFEST_SCHEMA, MAX_MEMORY_PAGES
from migcodec.files import json_problem, open_regular, parse_json
from migcodec.hashing import checksum, seal, unseal
from migcodec.ram import short_of
from migcodec.selector.arms import Arm, fallback_arms
from migcodec.selector.costmodel import (
    FEATURES_LABEL,
    MAX_COST_S,
    ArmCost,
    CostModel,
    checked_arm_cost,
    is_cost_s,
    machine_cost_model,
    window_work,
)
from migcodec.selector.decisions import decision_price, decision_prices
from migcodec.selector.features import (
    CONTEXT_NAMES,
    FeatureExtractor,
    WindowFeatures,
    sample_rows,
)
from migcodec.selector.objectives import Objective, Outcome
from migcodec.storage import Location, location

#: 3: the file names and checksums every array it holds, in its sealed meta; 4: the features
#: of a window stored as a sample read as many of its pages as err like an engine's sample;
#: 5: a window's changed words and runs of changed bytes, and the features' runs per page;
#: 6: the variance of the sampled pages' changed words, and their covariance with the runs;
#: 7: every arm's output checked to decode to the window's pages (:data:`CHECK_EVERY`). A
#: table of an earlier version may score a codec whose output never decoded (a plugin that
#: wrote a byte a page was every window's best arm): its cache key differs, so a cached one
#: is measured again, and a ``--table`` file of it is refused, saying to rebuild it
TABLE_VERSION = 7
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
    "stored_words",  # (windows,): changed words of the stored non-zero pages
    "stored_runs",  # (windows,): and their runs of changed bytes
    "change_runs",  # (windows,): the features' runs of changed bytes per held page
    "words_var",  # (windows,): the variance of a held sampled page's changed words
    "words_runs_cov",  # (windows,): and their covariance with its runs of changed bytes
)


#: one batch in this many of each arm's output is decoded and compared with its pages as a
#: table is measured (:func:`encode_window`); the same batches whichever way the table is
#: measured, in process or in parts. Decoding every batch cost up to a fifth of a recorded
#: trace's measurement; a codec whose output never decodes is refused all the same, on the
#: first windows it encodes
CHECK_EVERY = 2


#: what the user can do meanwhile about an arm whose codec is stuck (see
#: :func:`~migcodec.codecs.stuck.stuck_codec`): the other arms are evaluated without it
LEAVE_ARMS_OUT = "leave its arms out of --arms"


class TableError(ValueError):
    """A table file is missing, stale or unreadable; rebuild it (delete the file)."""


#: arrays of one row per window and one column per arm
_WINDOW_ARM = (
    "input_bytes",
    "output_bytes",
    "wall_s",
    "cpu_s",
    "device_s",
    "predicted_ratio",
    "predicted_rate",
    "probe_s",
    "cpu_spread",
    "stored_out",
    "delta_bytes",
    "probe_out",
)
#: arrays whose nan says "none": no device time, an arm not probed or not a delta arm, a
#: spread of no time; their other entries are at least 0 (a probe may predict inf)
_NAN_IS_NONE = (
    "device_s",
    "predicted_ratio",
    "predicted_rate",
    "cpu_spread",
    "delta_bytes",
    "probe_out",
)
#: arrays whose entries may be below 0 (finite all the same)
_SIGNED = ("words_runs_cov",)
#: work arrays a table with ``pages`` must also hold: its features and modelled times read
#: them together (``stored_words`` and ``stored_runs`` are held together, or neither, as
#: are ``words_var`` and ``words_runs_cov``)
_WITH_PAGES = (
    "stored_out",
    "stored",
    "zero_pages",
    "sample",
    "held_frac",
    "delta_bytes",
    "probe_pages",
    "probe_out",
)


def _check_table(table: Table) -> None:
    """Raise :class:`TableError` naming the first thing in ``table`` no build makes:
    arrays of another shape than windows x arms (or windows, or windows x
    ``CONTEXT_NAMES``), not floating point, negative, or not finite where nan does not
    say "none"; sizes and times beyond any build's (:func:`_check_magnitudes`); no
    window, or one of no bytes in or out or no stored page; arms that are no codec
    configs; kinds, phases or per-arm costs not one per arm or window; a page size that
    is not a whole number of bytes. Arms this host has no codec for are not refused: a
    table may be replayed where it was not built. A replay and a modelled table then
    index and divide without checking (their arithmetic is per window)."""
    arms = table.arms
    if not isinstance(arms, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) for a in arms
    ):
        raise TableError(f"its arms are {arms!r}; they should be codec configs")
    k = len(arms)
    n = table.input_bytes.shape[0] if getattr(table.input_bytes, "ndim", 0) else 0
    if not k:
        raise TableError("it holds no arms")
    if not n:
        raise TableError("it holds no windows")
    shapes = {name: ((n, k), f"windows x its {k} arms") for name in _WINDOW_ARM}
    shapes["context"] = ((n, len(CONTEXT_NAMES)), "windows x context features")
    for name in ("cheap_s", *_WORK_ARRAYS):
        shapes.setdefault(name, ((n,), "one per window"))
    for name, (shape, what) in shapes.items():
        array = getattr(table, name)
        if array is None:
            continue
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise TableError(f"array {name!r} is {kind}; it should be floating point")
        if array.shape != shape:
            raise TableError(
                f"array {name!r} has shape {array.shape}; it should be {shape} ({what})"
            )
        values = array[~np.isnan(array)] if name in _NAN_IS_NONE else array
        if name in _NAN_IS_NONE:
            bad = values < 0
        elif name == "context":  # shares (entropy scaled): 1e300 overflowed auto's drift
            bad = ~((values >= 0) & (values <= 1))
        elif name in _SIGNED:
            bad = ~np.isfinite(values)
        else:
            bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            needed = (
                "nan or at least 0"
                if name in _NAN_IS_NONE
                else "from 0 to 1"
                if name == "context"
                else "finite"
                if name in _SIGNED
                else "finite and at least 0"
            )
            raise TableError(
                f"array {name!r} holds {float(values[bad][0])!r}; its entries should be {needed}"
            )
    for name in ("input_bytes", "output_bytes"):  # a window's pages each send a byte
        if not (getattr(table, name) >= 1).all():
            raise TableError(f"array {name!r} holds a window of no bytes")
    if table.pages is not None:
        missing = [name for name in _WITH_PAGES if getattr(table, name) is None]
        if (table.stored_words is None) != (table.stored_runs is None):
            missing.append("stored_words" if table.stored_words is None else "stored_runs")
        if (table.words_var is None) != (table.words_runs_cov is None):
            missing.append("words_var" if table.words_var is None else "words_runs_cov")
        if missing:
            raise TableError(f"it holds work counts but no {', '.join(missing)}")
        if not (table.stored > 0).all():
            raise TableError("array 'stored' holds a window of no stored page")
        if (table.held_frac > 1).any():
            raise TableError("array 'held_frac' holds a share above 1")
    if not isinstance(table.phases, list) or len(table.phases) != n:
        raise TableError(f"it holds {len(table.phases)} phases for {n} windows")
    meta = table.meta
    page_size = meta.get("page_size", 4096)
    # as a trace's pages are (a page of 2**80 bytes reached numpy as an array dimension)
    rule = MANIFEST_SCHEMA["page_size"]
    if type(page_size) is not int or not rule.check(page_size):
        raise TableError(f"its page_size is {page_size!r}, not {rule.rule}")
    _check_magnitudes(table, page_size)
    if table.pages is not None and (table.zero_pages > table.stored).any():
        raise TableError("array 'zero_pages' holds more zero pages than a window stored")
    kinds = meta.get("kinds")
    if kinds is not None and (
        not isinstance(kinds, list)
        or len(kinds) != k
        or not all(kind in tuple(CodecKind) for kind in kinds)
    ):
        raise TableError(
            f"its kinds are {kinds!r}; they should be one of "
            f"{', '.join(CodecKind)} per arm ({k} arms)"
        )
    costs = meta.get("costs") or {}
    try:
        for label, fields in costs.items():
            checked_arm_cost(label, fields)
    except (AttributeError, TypeError, ValueError) as exc:
        raise TableError(f"its cost model {exc}") from None
    decisions = meta.get("probe_decisions") or {}
    if not isinstance(decisions, dict):
        raise TableError(f"its probe decisions' prices are {decisions!r}, not prices by policy")
    for policy, prices in decisions.items():
        if not (
            isinstance(prices, list) and len(prices) == 2 and all(is_cost_s(p) for p in prices)
        ):
            raise TableError(
                f"its probe decisions' prices for {policy!r} are {prices!r}, not two numbers "
                "of seconds from 0 to 1 (under the throughput objective, then any other)"
            )


#: arrays of seconds spent on a window (per arm, or for the window's features)
_SECONDS = ("wall_s", "cpu_s", "device_s", "probe_s", "cheap_s")
#: work arrays that count pages of a window
_PAGE_COUNTS = ("pages", "stored", "zero_pages", "sample", "probe_pages")


#: bytes beyond twice its input that a window's output may hold (framing of a tiny window)
_MOST_FRAMING = 65536


def _check_magnitudes(table: Table, page_size: int) -> None:
    """Raise :class:`TableError` for sizes and times no build measures, though finite: a
    window larger than the largest guest a trace describes, or seconds beyond
    :data:`~migcodec.selector.costmodel.MAX_COST_S` per guest byte (a cost model's bound
    per page, taken per byte). Replays divide by them: a window of 1e308 seconds or of
    5e-324 bytes made a reward of -inf, refused as the fault of the policy that got it."""
    window_bytes = table.input_bytes.max(axis=1)
    largest = MAX_MEMORY_PAGES * page_size
    if (window_bytes > largest).any():
        raise TableError(
            f"array 'input_bytes' holds a window of {float(window_bytes.max()):g} bytes, more "
            f"than a guest of {MAX_MEMORY_PAGES} pages of {page_size} bytes holds"
        )
    # a codec that cannot shrink a page sends it raw: a frame is its pages and a few bytes
    # of framing a page (an output of 1e308 bytes a window overflowed a replay's sums)
    sent = table.output_bytes > 2.0 * table.input_bytes + _MOST_FRAMING
    if sent.any():
        w, a = (int(i) for i in np.argwhere(sent)[0])
        raise TableError(
            f"array 'output_bytes' holds {float(table.output_bytes[w, a]):g} bytes sent for "
            f"window {w} of {float(table.input_bytes[w, a]):g} bytes; no codec sends more "
            "than twice what it is given"
        )
    for name in _SECONDS:
        seconds = getattr(table, name)
        bound = window_bytes * MAX_COST_S
        bad = seconds > (bound[:, None] if seconds.ndim == 2 else bound)  # nan: none
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            w = at[0]
            raise TableError(
                f"array {name!r} holds {float(seconds[at])!r} s for window {w} of "
                f"{float(window_bytes[w]):g} bytes; no build measures more than "
                f"{MAX_COST_S:g} s a byte"
            )
    if table.pages is None:
        return
    for name in _PAGE_COUNTS:
        counts = getattr(table, name)
        if (counts > MAX_MEMORY_PAGES).any():
            raise TableError(
                f"array {name!r} holds {float(counts.max()):g} pages in a window, more than "
                f"the largest guest a trace describes ({MAX_MEMORY_PAGES} pages)"
            )
    # a page has page_size / 8 words, and runs of changed bytes apart by an unchanged one
    for name, what, most in (
        ("stored_words", "changed words", page_size // 8),
        ("stored_runs", "runs of changed bytes", -(-page_size // 2)),
    ):
        counts = getattr(table, name)
        if counts is not None and (counts > table.stored * most).any():
            raise TableError(
                f"array {name!r} holds more {what} than a window's stored pages have "
                f"({most} a page of {page_size} bytes)"
            )


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
    stored_words: np.ndarray | None = None
    stored_runs: np.ndarray | None = None
    change_runs: np.ndarray | None = None
    words_var: np.ndarray | None = None
    words_runs_cov: np.ndarray | None = None
    #: why this machine's calibration, made for the table as it was joined, replaced the
    #: one saved before (or could not be kept), for its caller to say; not saved with it
    calibration_note: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Every table is checked once, however made (:func:`_check_table`): built,
        joined, modelled, loaded or by hand."""
        _check_table(self)

    @property
    def n_windows(self) -> int:
        return int(self.input_bytes.shape[0])

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def labels(self) -> list[str]:
        return [Arm.of(a).label for a in self.arms]

    def probe_decision_s(self, policy: str, objective: Objective) -> float | None:
        """Seconds that ``policy``'s decision of which probes to buy costs a window of this
        table under ``objective``: the price of the cost model the table was measured or
        modelled with (:func:`~migcodec.selector.decisions.decision_prices`), so that
        replays of it charge alike wherever they run; ``None`` for a policy that model has
        no price for (one defined outside migcodec), whose replay times the call."""
        prices = (self.meta.get("probe_decisions") or {}).get(policy)
        if prices is None:
            return None
        return decision_price(prices, objective)

    @property
    def kinds(self) -> list[str]:
        return list(self.meta.get("kinds") or [CodecKind.COMPRESS] * self.n_arms)

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
            if self.change_runs is not None:
                f.change_runs = float(self.change_runs[w])
            if self.words_var is not None and self.words_runs_cov is not None:
                f.words_var = float(self.words_var[w])
                f.words_runs_cov = float(self.words_runs_cov[w])
        f.checked_arms = self.n_arms  # as checked with the table
        return f

    def spread(self) -> np.ndarray:
        """Per arm, the median over windows of its timings' spread between repeats."""
        if self.cpu_spread is None:
            return np.full(self.n_arms, np.nan)
        return np.nanmedian(self.cpu_spread, axis=0)

    def modelled(self, model: CostModel) -> Table:
        """This table with every time replaced by ``model``'s: encode CPU (and wall) time
        per (window, arm), probe and cheap-feature costs, the per-worker rate each probe
        predicts, and each arm's cost prior (:meth:`costs`). Output bytes, features and
        probe outputs are unchanged; emulated hardware keeps its modelled device time and
        rate.

        Nothing timed on the machine that built the table is left, so two tables of the
        same windows, measured apart (or in parts on several hosts), replay alike."""
        if self.pages is None:
            raise TableError("this table holds no work counts to model; rebuild it")
        if model.page_size != self.page_size:  # its costs per page are of other pages
            raise TableError(
                f"the cost model was calibrated on {model.page_size}-byte pages and this "
                f"table's windows hold {self.page_size}-byte pages; model it with a cost "
                f"model calibrated on {self.page_size}-byte pages"
            )
        page_size, batch = self.page_size, model.batch_pages
        scale = self.pages / self.stored
        calls = np.ceil(self.pages / batch)
        nz = self.stored - self.zero_pages
        cpu = np.empty_like(self.cpu_s)
        probe = np.zeros_like(self.probe_s)
        rate = self.predicted_rate.copy()
        zero_frac = self.context[:, CONTEXT_NAMES.index("zero_frac")]
        payloads = np.maximum(
            self.stored_out - (self.stored + np.ceil(self.stored / batch) * 12)[:, None], 1.0
        )
        # a delta arm's pages the destination does not hold went through its fall-back:
        # they cost what the fall-back arm's do at its ratio, and the rest are records
        # (see the cost model); the share held is the sample's
        fallbacks = fallback_arms([Arm.of(a) for a in self.arms])
        held = np.ones(len(self.stored)) if self.held_frac is None else self.held_frac
        # the changes a delta arm's records encode (a table without them: none)
        words, runs = (
            (0.0, 0.0)
            if self.stored_words is None
            else (self.stored_words * held * scale, self.stored_runs * held * scale)
        )
        kinds = self.kinds
        for i, label in enumerate(self.labels):
            cost = model.arm(label)
            payload = payloads[:, i]
            records = nz
            fallback = fallbacks[i]
            if fallback >= 0:
                through = payloads[:, fallback] * (1.0 - held)  # the fall-back's bytes
                payload = np.maximum(payload - through, 1.0)
                records = nz * held
            delta = kinds[i] == CodecKind.DELTA
            cpu[:, i] = cost.cpu_arrays(
                calls,
                records * scale,
                payload * scale,
                self.zero_pages * scale,
                page_size,
                words if delta else 0.0,
                runs if delta else 0.0,
            )
            if fallback >= 0:
                by_fallback = model.arm(self.labels[fallback]).page_cost(
                    nz * page_size / payloads[:, fallback]
                )
                cpu[:, i] += by_fallback * (nz - records) * scale
            probed = np.isfinite(self.probe_out[:, i]) & (self.probe_pages > 0)
            if probed.any():
                probe[probed, i] = cost.cpu_arrays(
                    1.0,
                    self.probe_pages[probed],
                    self.probe_out[probed, i],
                    0.0,
                    page_size,
                )
                if not np.isfinite(self.device_s[:, i]).any():
                    rate[probed, i] = _batch_rate(
                        cost,
                        self.probe_out[probed, i] / self.probe_pages[probed],
                        zero_frac[probed],
                        batch,
                        page_size,
                    )
        features = model.arm(FEATURES_LABEL)
        cheap = features.per_call + features.per_page[0] * self.sample
        fields = {name: getattr(self, name) for name in (*_ARRAYS, *_WORK_ARRAYS)}
        fields.update(
            cpu_s=cpu, wall_s=cpu.copy(), probe_s=probe, cheap_s=cheap, predicted_rate=rate
        )
        meta = {
            **self.meta,
            "cost_model": {"machine": model.machine, "created": model.created},
            "costs": {label: asdict(model.arm(label)) for label in self.labels},
            "probe_decisions": decision_prices(model, self.n_arms),
        }
        return Table(list(self.arms), phases=list(self.phases), meta=meta, **fields)

    def outcome(self, w: int, arm: int) -> Outcome:
        device = self.device_s[w, arm]
        zero = None
        if self.zero_pages is not None and self.pages is not None:  # stored: scaled up
            zero = float(self.zero_pages[w] * self.pages[w] / max(self.stored[w], 1.0))
        return Outcome(
            float(self.input_bytes[w, arm]),
            float(self.output_bytes[w, arm]),
            float(self.wall_s[w, arm]),
            float(self.cpu_s[w, arm]),
            None if np.isnan(device) else float(device),
            zero,
        )

    # -- files -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike | Location) -> None:
        """Write the table to a path or fsspec URL, whole (see :meth:`Location.write_bytes`).

        The meta names every array with its dtype, shape and checksum, and is sealed
        (:func:`~migcodec.hashing.seal`): a zip member's own CRC covers its bytes but not
        its name, and a table missing an optional array is a valid table, so without them
        a damaged file could read back as another table.

        A table changed since it was made is checked again (:func:`_check_table`), and
        one no build makes is refused with :class:`TableError`, before anything is
        written."""
        try:
            _check_table(self)
            for name in ("arms", "phases", "meta"):  # what its sealed JSON holds
                problem = json_problem(getattr(self, name), f"its {name}")
                if problem is not None:
                    raise TableError(problem)
        except TableError as exc:
            raise TableError(f"cannot save evaluation table to {path}: {exc}") from None
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update(
            {name: getattr(self, name) for name in _WORK_ARRAYS if getattr(self, name) is not None}
        )
        arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        meta = {
            **self.meta,
            "version": TABLE_VERSION,
            "arms": self.arms,
            "phases": self.phases,
            "arrays": {name: _array_digest(a) for name, a in arrays.items()},
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=np.array(json.dumps(seal(meta))), **arrays)
        location(path).write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike | Location) -> Table:
        """The table :meth:`save` wrote; :class:`TableError` naming what is wrong when the
        file is unreadable, of another version, differs in any way from what was written
        (its meta's seal, the arrays it names, their checksums), or holds what no build
        makes (:func:`_check_table`: shapes, kinds, values, meta)."""
        where = location(path)

        def unreadable(why: object) -> TableError:
            return TableError(f"cannot read evaluation table {where}: {why}; delete it to rebuild")

        try:
            local = where.local_path
            # a named pipe in a table's place would block its open until a writer came
            source = open_regular(local) if local else io.BytesIO(where.read_bytes())
            with source, np.load(source, allow_pickle=False) as data:
                problem = _member_too_large(data, "meta", _META_LIMIT)
                if problem is not None:
                    raise unreadable(problem)
                doc = parse_json(str(data["meta"]))
                version = doc.get("version") if isinstance(doc, dict) else None
                if version != TABLE_VERSION:
                    raise TableError(
                        f"table {where} has version {version}, expected "
                        f"{TABLE_VERSION}; delete it to rebuild"
                    )
                meta = unseal(doc)
                written = meta.pop("arrays", None)
                if not (
                    isinstance(written, dict)
                    and all(isinstance(v, str) for v in written.values())
                    and isinstance(meta.get("arms"), list)
                    and isinstance(meta.get("phases"), list)
                ):
                    raise unreadable("its meta lacks the arrays, arms or phases a table names")
                held = set(data.files) - {"meta"}
                if held != set(written) or not set(_ARRAYS) <= held:
                    raise unreadable(
                        f"it holds arrays {sorted(held)}, written with {sorted(written)}"
                    )
                unknown = held - set(_ARRAYS) - set(_WORK_ARRAYS)
                if unknown:
                    raise unreadable(f"it holds arrays no table has: {sorted(unknown)}")
                problem = _arrays_too_large(data, written)
                if problem is not None:
                    raise unreadable(problem)
                arrays = {name: data[name] for name in written}
        except TableError:
            raise
        # a damaged zip fails in zipfile, zlib or numpy's reader with exceptions of their
        # own (numpy's header parser raises even SyntaxError): whichever, the file is bad
        except Exception as exc:
            # numpy takes a file that is no zip (all zeros, say) for a pickle, and its refusal
            # advises loading it unsafely: a damaged cache is never to be loaded so
            pickled = "pickle" in str(exc)
            raise unreadable(
                "it is neither an .npz archive nor a numpy array file" if pickled else exc
            ) from exc
        for name, array in arrays.items():
            if _array_digest(array) != written[name]:
                raise unreadable(f"array {name!r} differs from what was written")
        del meta["version"]  # the file's format, not the table's: a loaded table's meta is
        # what it was when built (a cached and a fresh table report alike)
        try:
            return cls(meta.pop("arms"), phases=meta.pop("phases"), meta=meta, **arrays)
        except (TableError, TypeError, ValueError) as exc:  # what no build makes, by hand
            raise unreadable(exc) from None


#: the most bytes a table's meta may unpack to (arms, phases and settings: kilobytes)
_META_LIMIT = 16 << 20
#: what a digest (:func:`_array_digest`) says of its array's dtype and shape
_DIGEST = re.compile(r"^([<>|=]?[a-zA-Z]\d*)\[([0-9, ]*)\]:[0-9a-f]+$")


def _member_too_large(data, name: str, limit: int) -> str | None:
    """Why the archive member ``name`` is refused before it is read (it unpacks to more
    than ``limit`` bytes: a small file can unpack to gigabytes), or ``None``."""
    size = data.zip.getinfo(f"{name}.npy").file_size
    return (
        f"its member {name!r} unpacks to {size} bytes, more than {limit}" if size > limit else None
    )


def _arrays_too_large(data, written: dict[str, str]) -> str | None:
    """Why the arrays are refused before any is read, or ``None``: one that unpacks to more
    than its digest says (a header's worth more), a digest that is none, or digests that
    claim more memory than this machine has available (a 2 MB file forged to unpack to
    gigabytes took 4 GB of memory before its checksum refused it)."""
    total = 0
    for name, digest in written.items():
        match = _DIGEST.match(digest)
        if match is None:
            return f"its meta's digest of array {name!r} is not one"
        try:
            itemsize = np.dtype(match.group(1)).itemsize
        except TypeError:
            return f"its meta's digest of array {name!r} names no dtype"
        dims = [int(d) for d in match.group(2).replace(" ", "").split(",") if d]
        expected = itemsize * math.prod(dims)
        total += expected
        problem = _member_too_large(data, name, expected + _NPY_HEADER_LIMIT)
        if problem is not None:
            return problem
    if short_of(total) is not None:
        return f"its arrays claim {total} bytes, more memory than is available"
    return None


#: the most bytes a .npy header takes beyond its array's (numpy pads it to 64 bytes; a
#: header of very many dimensions is longer)
_NPY_HEADER_LIMIT = 4096


def _array_digest(array: np.ndarray) -> str:
    """An array's dtype, shape and content checksum, as a table file's meta records them."""
    return f"{array.dtype.str}{list(array.shape)}:{checksum([array.tobytes()]):016x}"


def _batch_rate(
    cost: ArmCost, payload_per_page: np.ndarray, zero_frac: np.ndarray, batch: int, page_size: int
) -> np.ndarray:
    """Bytes per CPU second one worker encodes a ``batch``-page batch of a window at: the
    cost model's time for its non-zero pages at the probe's ratio, and its zero pages (what
    :class:`~migcodec.selector.features.FeatureExtractor` predicts from a timed probe)."""
    pages = np.maximum((1.0 - zero_frac) * batch, 1.0)
    work = cost.cpu_arrays(1.0, pages, pages * payload_per_page, zero_frac * batch, page_size)
    # a time of a few subnormal seconds (a model's least) is a rate too large for a float:
    # infinite, as a time of 0 is, without a warning
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(work > 0, batch * page_size / work, np.inf)


def encode_window(
    codec: Codec,
    window: Window,
    batch_pages: int,
    decoder: Codec | None = None,
    check_every: int = CHECK_EVERY,
) -> Outcome:
    """Encode a window's pages in ``batch_pages``-page batches on this thread, as one
    worker would; return the summed measurements (CPU time of the codec calls only).

    With a ``decoder`` (an instance of the codec's own: :func:`check_round_trip`), batch
    ``j`` of window ``i`` is decoded when ``(i + j) % check_every == 0``, as the
    destination would decode it, into what it holds (``previous``, for a codec that reads
    it; zeros otherwise); it must give back the batch's pages byte for byte, or the codec
    is refused with :class:`~migcodec.codecs.CodecFailed` naming it and the window. The
    decode is not timed. Whatever else the codec's own code raises is a
    :class:`~migcodec.codecs.CodecFailed` too. Each encode and decode is this thread's codec
    call while it runs (see :mod:`migcodec.codecs.bounded`)."""
    pages = window.pages
    n = pages.shape[0]
    # the window is encoded as window-local memory: its rows are its page numbers, and the
    # destination holds ``previous`` for them (nothing, without it: every page falls back)
    destination = None
    if codec.reads_destination and window.previous is not None:
        destination = DestinationMirror.holding(np.arange(n, dtype=np.int64), window.previous)
    base = window.previous if destination is not None else None
    held = None if decoder is None else np.empty_like(pages)  # the destination's memory
    what = f"window {window.index}'s pages"
    out = wall = cpu = 0.0
    zero = 0
    device: float | None = None
    watch = codec_watch()
    with failures_of(codec.name, f"to encode {what}"):
        for first in range(0, n, batch_pages):  # one iteration per batch, not per page
            count = min(batch_pages, n - first)
            batch = Batch(pages, [(first, count)], window.page_size, batch_pages)
            # the window's CPU time is read around each call: per-batch stats.cpu_s is
            # sampled (one encode in several reads the clock), right for a stream's totals
            # but not exact per call, and a clock around the loop would also time the loop
            encoded, cpu_s = watch.encoding(codec, batch, destination)
            cpu += cpu_s
            stats = encoded.stats
            out += stats.output_bytes
            wall += stats.wall_s
            zero += stats.zero_pages
            if stats.device_s is not None:
                device = (device or 0.0) + stats.device_s
            # checked before the next encode, which may reuse the buffers this one's
            # output is in; the rows are set first, or a decoder that writes nothing
            # would find another arm's decoded pages there
            if held is not None and (window.index + first // batch_pages) % check_every == 0:
                rows = slice(first, first + count)
                held[rows] = 0 if base is None else base[rows]
                check_round_trip(decoder, encoded, held, rows, pages[rows], what)
    return Outcome(float(pages.nbytes), out, wall, cpu, device, float(zero))


def _touch(window: Window) -> None:
    """Read a window's pages (and previous) once, so the first arm timed is not the only
    one that pays for bringing them into cache."""
    np.bitwise_xor.reduce(np.ascontiguousarray(window.pages).view(np.uint64), axis=None)
    if window.previous is not None:
        np.bitwise_xor.reduce(np.ascontiguousarray(window.previous).view(np.uint64), axis=None)


#: per-window arrays every part holds: what the window is, whichever arms it measured
_PART_WINDOW = ("input", "pages", "stored", "zero_pages", "stored_words", "stored_runs")
#: per encoded arm ``(windows, arms encoded)``: what encoding the window with the arm did
_PART_ENCODE = ("output_bytes", "wall_s", "cpu_s", "device_s", "cpu_spread", "stored_out")
#: what the part holding a range's features has: cheap features and every arm's probe
_PART_FEATURES = (
    "context",
    "predicted_ratio",
    "predicted_rate",
    "cheap_s",
    "probe_s",
    "sample",
    "held_frac",
    "delta_bytes",
    "probe_pages",
    "probe_out",
    "change_runs",
    "words_var",
    "words_runs_cov",
)
#: how each part array is shaped past its first (window) axis; ``k`` is an arm count
_PART_SHAPES = {
    "context": (len(CONTEXT_NAMES),),
    **dict.fromkeys(_PART_ENCODE, ("k",)),
    **dict.fromkeys(
        ("predicted_ratio", "predicted_rate", "probe_s", "delta_bytes", "probe_out"), ("k",)
    ),
}


@dataclass
class TablePart:
    """Measurements of some arms on one range of windows: what one task of a distributed
    table build returns. :func:`join_parts` makes a table of parts that together cover a
    contiguous run of ranges with every arm encoded once and the features measured once in
    each range.

    ``start``/``stop`` name the range of window indices measured (``stop`` ``None``: to
    the source's end); ``encoded`` are the positions in ``arms`` of the arms encoded, and
    ``kinds``/``paths`` describe them as the measuring host built them. ``arrays`` has
    :data:`_PART_WINDOW` for every window with pages, the encoded arms' columns of
    :data:`_PART_ENCODE`, and :data:`_PART_FEATURES` when ``features`` is set.
    """

    arms: list[dict]
    params: dict
    start: int
    stop: int | None
    encoded: list[int]
    features: bool
    arrays: dict[str, np.ndarray]
    phases: list[str]
    page_size: int | None
    kinds: list[str]
    paths: list[str]

    @property
    def n_windows(self) -> int:
        """Windows with pages in the range (empty windows are not scored)."""
        return len(self.phases)

    @property
    def span(self) -> str:
        return f"{self.start}-{'end' if self.stop is None else self.stop}"


def measure_windows(
    windows: Iterable[Window],
    arms: list[Arm],
    encode: Sequence[int] | None = None,
    features: bool = True,
    repeats: int = 3,
    batch_pages: int = 64,
    sample_pages: int = 32,
    probe_pages: int = 32,
    progress: Callable[[int], None] | None = None,
    start: int = 0,
    stop: int | None = None,
    extractor: FeatureExtractor | None = None,
) -> TablePart:
    """Measure arms ``encode`` (positions in ``arms``; all by default) on ``windows``, and
    with ``features`` every window's features and every arm's probe; streamed (windows are
    not kept). ``start``/``stop`` label the range of window indices ``windows`` are, for
    :func:`join_parts`. ``extractor`` measures the features (one over ``arms`` with these
    settings; by default one is made, which times each arm's probe calls first): a worker
    measuring many parts keeps one.

    Each encoded arm encodes each window ``repeats`` times, interleaved across the arms
    encoded together and rotated so that no arm always reads cold pages; the medians are
    kept with their spread. Features are measured ``repeats`` times and their costs are the
    medians, as are the probes' predicted rates.

    The whole part is measured on a thread of its own, its windows read there too, which
    this one waits for no longer than a codec call may last
    (:mod:`migcodec.codecs.bounded`): an arm whose codec is stuck ends it with
    :class:`~migcodec.codecs.CodecStuck`. One handoff per part, not per window: each one
    makes both threads wait to be scheduled again, which on a busy host took longer than
    the handoff itself, and was charged to the table's measurement.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    positions = list(range(len(arms))) if encode is None else [int(i) for i in encode]
    if any(not 0 <= i < len(arms) for i in positions) or len(set(positions)) != len(positions):
        raise ValueError(f"arms to encode must be distinct positions of {len(arms)} arms")
    return run_bounded(
        _measure_windows,
        windows,
        arms,
        positions,
        features,
        repeats,
        batch_pages,
        sample_pages,
        probe_pages,
        progress,
        start,
        stop,
        extractor,
        instead=LEAVE_ARMS_OUT,
    )


def _measure_windows(
    windows: Iterable[Window],
    arms: list[Arm],
    positions: list[int],
    features: bool,
    repeats: int,
    batch_pages: int,
    sample_pages: int,
    probe_pages: int,
    progress: Callable[[int], None] | None,
    start: int,
    stop: int | None,
    extractor: FeatureExtractor | None,
) -> TablePart:
    """:func:`measure_windows` of checked arguments, on the thread that measures them."""
    codecs = [arms[i].codec for i in positions]
    decoders = [_decoder(c) for c in codecs]
    if not features:
        extractor = None
    elif extractor is None:
        extractor = FeatureExtractor(
            [a.codec for a in arms],
            sample_pages=sample_pages,
            batch_pages=batch_pages,
            probe_pages=probe_pages,
        )
    names = (
        *_PART_WINDOW,
        *(_PART_ENCODE if codecs else ()),
        *(_PART_FEATURES if features else ()),
    )
    rows: dict[str, list] = {name: [] for name in names}
    phases: list[str] = []
    m = len(codecs)
    page_size = None
    watch = codec_watch()
    for window in windows:
        if watch.left:  # the caller stopped waiting (Ctrl-C): the part is no one's
            break
        if window.n_pages == 0:
            continue
        page_size = window.page_size
        scale = window.scale
        if codecs:
            _touch(window)  # every arm then finds the pages equally warm in cache
            walls = np.zeros((repeats, m))
            cpus = np.zeros((repeats, m))
            out = np.zeros(m)
            device = np.full(m, np.nan)
            for r in range(repeats):
                for i in np.roll(np.arange(m), -r):  # rotate: no arm always reads cold pages
                    # the first run's sizes are kept: its output is what is checked
                    o = encode_window(
                        codecs[i], window, batch_pages, decoders[i] if r == 0 else None
                    )
                    walls[r, i], cpus[r, i] = o.wall_s, o.cpu_s
                    if r == 0:
                        out[i] = o.output_bytes
                        device[i] = np.nan if o.device_s is None else o.device_s
            cpu = np.median(cpus, axis=0)
            rows["output_bytes"].append(out * scale)
            rows["wall_s"].append(np.median(walls, axis=0) * scale)
            rows["cpu_s"].append(cpu * scale)
            rows["device_s"].append(device * scale)
            with np.errstate(invalid="ignore", divide="ignore"):
                rows["cpu_spread"].append((cpus.max(axis=0) - cpus.min(axis=0)) / cpu)
            rows["stored_out"].append(out)
        if extractor is not None:
            _measure_features(extractor, window, repeats, rows, first=not phases)
        # the stored pages' zero pages, changed words and runs, in one scan of them
        work = window_work(window.pages, 0.0, batch_pages, window.previous)
        rows["input"].append(float(window.nbytes) * scale)
        rows["pages"].append(float(window.dirty_pages or window.n_pages))
        rows["stored"].append(float(window.n_pages))
        rows["zero_pages"].append(work.zero_pages)
        rows["stored_words"].append(work.words)
        rows["stored_runs"].append(work.runs)
        phases.append(window.phase or "")
        if progress is not None:
            progress(len(phases))
    arrays = {}
    for name, values in rows.items():
        tail = tuple(
            (m if name in _PART_ENCODE else len(arms)) if d == "k" else d
            for d in _PART_SHAPES.get(name, ())
        )
        arrays[name] = np.asarray(values, dtype=float).reshape((len(values), *tail))
    return TablePart(
        arms=[a.get_config() for a in arms],
        params={
            "repeats": repeats,
            "batch_pages": batch_pages,
            "sample_pages": sample_pages,
            "probe_pages": probe_pages,
        },
        start=start,
        stop=stop,
        encoded=positions,
        features=features,
        arrays=arrays,
        phases=phases,
        page_size=page_size,
        kinds=[c.kind for c in codecs],
        paths=[c.probe_path() for c in codecs],
    )


def _decoder(codec: Codec) -> Codec:
    """An instance of ``codec`` of its own, made from its config as a destination makes
    one: what :func:`encode_window` decodes the arm's output with."""
    with failures_of(codec.name, "to start from its config"):
        return codec_watch().calling(codec, "clone", codec.clone)


def matched_sample_size(engine_sample: int, window_pages: float, stored: int) -> int:
    """How many of a stored sample's ``stored`` pages the features of its window read, so
    that their error against the stored pages (which a table scores the window on) is the
    error an engine's sample of ``engine_sample`` pages has against the whole window of
    ``window_pages`` pages.

    A sample of ``m`` of ``N`` pages estimates their mean with a variance proportional to
    ``1/m - 1/N``; equal for ``(m', stored)`` and ``(engine_sample, window_pages)`` when
    ``1/m' = 1/engine_sample - 1/window_pages + 1/stored``. Reading every stored page
    instead, as many as an engine would, makes a stored window's features exact on what
    it is scored on: a policy replayed on them never pays for its sample's error (on
    recorded traces, the delta formats' per-window estimates then looked several times as
    accurate as a sample of the same size drawn from the pages stored)."""
    if stored <= 0 or window_pages <= stored:
        return min(engine_sample, stored) if stored > 0 else 0
    inverse = 1.0 / engine_sample - 1.0 / window_pages + 1.0 / stored
    m = round(1.0 / inverse)
    return 1 if m < 1 else stored if m > stored else m


def _measure_features(
    extractor: FeatureExtractor, window: Window, repeats: int, rows: dict, first: bool
) -> None:
    """Append one window's features (costs and predicted rates: medians of ``repeats``).

    The costs are those of the sample an engine would read (as many of the stored pages);
    what the features say of a window stored as a sample comes from
    :func:`matched_sample_size` of its pages, so it errs as an engine's sample would."""
    if first:  # first window: warm caches and lazy imports outside the timings
        extractor.extract(window.pages, window.previous, probe=True)
    runs = [
        extractor.extract(
            window.pages, window.previous, probe=True, window_pages=window.dirty_pages
        )
        for _ in range(repeats)
    ]
    k = len(extractor.codecs)
    feats = _matched_features(extractor, window, runs[0])
    feats.cheap_s = float(np.median([f.cheap_s for f in runs]))
    feats.probe_s = np.median([f.probe_s for f in runs], axis=0)
    feats.predicted_rate = np.median([f.predicted_rate for f in runs], axis=0)
    feats.sample = runs[0].sample  # what the costs are of
    rows["context"].append(feats.context)
    rows["predicted_ratio"].append(feats.predicted_ratio)
    rows["predicted_rate"].append(feats.predicted_rate)
    rows["cheap_s"].append(feats.cheap_s)
    rows["probe_s"].append(feats.probe_s)
    rows["sample"].append(float(feats.sample))
    rows["held_frac"].append(feats.held_frac)
    rows["delta_bytes"].append(
        np.full(k, np.nan) if feats.delta_bytes is None else feats.delta_bytes
    )
    rows["probe_pages"].append(float(feats.probe_pages))
    rows["probe_out"].append(feats.probe_out)
    rows["change_runs"].append(feats.change_runs)
    rows["words_var"].append(feats.words_var)
    rows["words_runs_cov"].append(feats.words_runs_cov)


def _matched_features(
    extractor: FeatureExtractor, window: Window, engine: WindowFeatures
) -> WindowFeatures:
    """``window``'s features from a sample of its stored pages whose error matches an
    engine's (:func:`matched_sample_size`; ``engine``, when it is all of them)."""
    stored, dirty = window.n_pages, window.dirty_pages
    if dirty is None or dirty <= stored:
        return engine
    size = matched_sample_size(extractor.sample_size(dirty), dirty, stored)
    if size >= stored:
        return engine
    rows = sample_rows(stored, size)
    previous = None if window.previous is None else window.previous[rows]
    return extractor.extract(
        window.pages[rows], previous, probe=True, sampled=True, window_pages=dirty
    )


def join_parts(parts: Sequence[TablePart], calibration: CostModel | None = None) -> Table:
    """The table of ``parts``, in window order.

    The parts' ranges must follow each other without gaps or overlaps, and in each range
    every arm must be encoded by exactly one part and the features held by exactly one;
    parts of one range must agree on its windows (their sizes and zero pages), or the trace
    changed while it was measured. A part that fails these is refused with
    :class:`TableError` naming the range. Timing costs of a range's features are its
    features part's.

    ``calibration`` is the cost model stored with the table as each arm's prior for
    policies that predict CPU time (by default this machine's, calibrated when missing).
    """
    if not parts:
        raise TableError("no table parts to join: measure at least one range of windows")
    first = parts[0]
    arm_list = [Arm.of(c) for c in first.arms]
    labels = [a.label for a in arm_list]
    k = len(arm_list)
    for p in parts:
        if p.arms != first.arms or p.params != first.params:
            raise TableError(
                f"table part of windows {p.span} was measured with other arms or settings "
                "than the others; measure every part of a table with the same ones"
            )
    spans = sorted({(p.start, p.stop) for p in parts}, key=lambda s: (s[0], s[1] is None, s[1]))
    for (a0, b0), (a1, b1) in itertools.pairwise(spans):
        if b0 != a1:
            raise TableError(
                f"table parts of windows {a0}-{b0} and {a1}-{'end' if b1 is None else b1} "
                "do not follow each other; measure every range exactly once"
            )
    kinds: list[str | None] = [None] * k
    paths: list[str | None] = [None] * k
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in (*_ARRAYS, *_WORK_ARRAYS)}
    phases: list[str] = []
    for span in spans:
        group = [p for p in parts if (p.start, p.stop) == span]
        where = group[0].span
        with_features = [p for p in group if p.features]
        if len(with_features) != 1:
            raise TableError(
                f"windows {where}: {len(with_features)} table parts hold features, expected 1"
            )
        owner: list[tuple[TablePart, int] | None] = [None] * k
        for p in group:
            for j, arm in enumerate(p.encoded):
                if owner[arm] is not None:
                    raise TableError(f"windows {where}: arm {labels[arm]} is measured twice")
                owner[arm] = (p, j)
                kinds[arm], paths[arm] = p.kinds[j], p.paths[j]
        missing = [labels[i] for i, o in enumerate(owner) if o is None]
        if missing:
            raise TableError(f"windows {where}: no table part measured {', '.join(missing)}")
        ref = group[0]
        for p in group[1:]:
            same = p.phases == ref.phases and all(
                np.array_equal(p.arrays[name], ref.arrays[name]) for name in _PART_WINDOW
            )
            if not same:
                raise TableError(
                    f"windows {where}: table parts disagree on the windows (the trace "
                    "changed while it was measured); measure the table again"
                )
        n = ref.n_windows
        for name in _PART_ENCODE:
            column = np.empty((n, k))
            for i, (p, j) in enumerate(owner):  # type: ignore[misc]
                column[:, i] = p.arrays[name][:, j]
            pieces[name].append(column)
        for name in _PART_FEATURES:
            pieces[name].append(with_features[0].arrays[name])
        pieces["input_bytes"].append(np.repeat(ref.arrays["input"][:, None], k, axis=1))
        for name in _PART_WINDOW[1:]:  # input is per arm in a table
            pieces[name].append(ref.arrays[name])
        phases += ref.phases
    if not phases:
        raise TableError("no windows with pages to evaluate: the trace or workload is empty")
    arrays = {name: np.concatenate(v) for name, v in pieces.items()}
    page_size = next(p.page_size for p in parts if p.page_size is not None)
    params = first.params
    note = None
    if calibration is None:
        calibration = evaluation_cost_model(arm_list, page_size, params["batch_pages"])
        note = calibration.note
    meta = {
        "repeats": params["repeats"],
        "batch_pages": params["batch_pages"],
        "sample_pages": params["sample_pages"],
        "probe_pages": params["probe_pages"],
        "page_size": page_size,
        "kinds": kinds,
        "paths": paths,
        "context_names": list(CONTEXT_NAMES),
        # one batch in this many of each arm's output was decoded back to its pages
        "checked_every": CHECK_EVERY,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "costs": {a.label: asdict(calibration.arm(a.label)) for a in arm_list},
        # the policies' decisions are not measured with the windows: priced, as the
        # measuring host's model has them, so that replays run anywhere charge alike
        "probe_decisions": decision_prices(calibration, len(arm_list)),
    }
    return Table(list(first.arms), phases=phases, meta=meta, calibration_note=note, **arrays)


def evaluation_cost_model(
    arms: list[Arm], page_size: int = 4096, batch_pages: int = 64
) -> CostModel:
    """This machine's cost model covering ``arms`` (:func:`machine_cost_model`), whose
    calibration of arms it does not cover yet (every arm encoded on pages for seconds, its
    probes and decisions timed) runs on a thread of its own, waited for no longer than a
    codec call may last: a codec stuck in it is named (:mod:`migcodec.codecs.bounded`)."""
    return run_bounded(machine_cost_model, arms, page_size, batch_pages, instead=LEAVE_ARMS_OUT)


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
    """Run every arm on every window (streamed: windows are not kept): one range with
    every arm, measured by :func:`measure_windows` and made a table by :func:`join_parts`
    (the same two steps a distributed build runs per range and arm).

    ``calibration`` is the cost model stored with the table as each arm's prior for
    policies that predict CPU time (by default this machine's, calibrated when missing).
    """
    part = measure_windows(
        windows,
        arms,
        repeats=repeats,
        batch_pages=batch_pages,
        sample_pages=sample_pages,
        probe_pages=probe_pages,
        progress=progress,
    )
    return join_parts([part], calibration)


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
