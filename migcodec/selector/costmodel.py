"""A calibrated cost model of every arm: repeatable timings for comparing policies.

Measured encode times move with whatever else the machine is doing, and a close call
between two arms flips with them: two measurements of one trace can then crown different
oracles. The cost model replaces each measured time by a prediction from the work done, so
that a policy comparison gives the same numbers every time it is run on one machine;
measured mode stays the default for what users see.

One arm's CPU seconds for some encode calls are::

    per_call x calls + per_zero_page x zero pages + per_page(class) x non-zero pages
        + per_word x changed words + per_run x runs of changed bytes

a fixed cost per call and a cost per byte by content class. Zero pages are a class of their
own (the framework scans them; no codec sees them). Non-zero pages are classed by how well
the arm compresses them, its ratio over them: a compressor's speed depends on the data far
more than on its size (zstd takes incompressible data on a fast path, and slows down on
short matches); ``per_page`` is piecewise linear in the log of that ratio, between knots
fitted to median timings of synthetic windows of every content class.

A delta codec's work follows the changes it encodes, not the ratio it comes out at: an
XBZRLE encoder walks a page run by run of changed bytes, a DSA record is written word by
word. Its ``per_page`` is flat (comparing a page the destination holds) and it pays
``per_word`` and ``per_run`` on top, fitted to pages of every content class with words
changed one by one, one byte of a word, and in runs of adjacent words, so that words and
runs vary apart. A curve by ratio priced a window's pages at the class of their average,
and programs' windows mix rewritten pages with pages of a few words changed: within one
recorded program's windows it predicted XBZRLE's time per page worse than a constant (the
standard deviation of the log of measured over modelled time 0.2-0.5, against 0.03-0.13
by runs, and 0.33 on a VM guest's). These counts are those of the pages
the destination holds (its records); the pages a delta codec sends through its fall-back
cost what the fall-back costs, and a user of the model prices those pages by the
fall-back arm's curve. :meth:`CostModel.fit_report` says how well the model predicts the
calibration windows.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from dataclasses import fields as fields_of
from pathlib import Path

import numpy as np

from migcodec import __version__
from migcodec.codecs import Batch, Codec, DestinationMirror, delta_kernels
from migcodec.codecs.base import RUN_BYTES
from migcodec.codecs.bounded import codec_watch
from migcodec.codecs.changes import CHANGE_SCAN, page_changes
from migcodec.codecs.roundtrip import failures_of
from migcodec.codecs.zero import zero_page_rows
from migcodec.datasets import generate_pages
from migcodec.datasets.trace.schema import MANIFEST_SCHEMA, Field
from migcodec.extensions import optional_extension
from migcodec.files import json_problem, parse_json, read_small_file
from migcodec.hashing import seal, unseal
from migcodec.selector.decisions import (
    decision_prices,
    fit_probe_decisions,
    probe_decision_label,
    probe_policies,
)
from migcodec.storage import LocalLocation
from migcodec.units import format_number
from migcodec.wire.format import MAX_BATCH_PAGES

#: the model's entry for the cheap features a policy reads per window (per call, and per
#: sampled page at every knot alike)
FEATURES_LABEL = "cheap features"
#: knots of the per-page cost curve: ratios over non-zero pages (log-spaced)
KNOTS = (1.0, 1.25, 1.6, 2.5, 4.0, 8.0, 16.0, 64.0, 512.0)
#: 2: the file is sealed (``migcodec.hashing.seal``): an edited or damaged one is refused;
#: 3: arms have costs per changed word and run; 4: the policies' probe decisions have
#: costs (``migcodec.selector.decisions``)
COST_MODEL_VERSION = 4
#: what calibration times, numbered: a change to it, or to the cost of what it times,
#: calibrates every machine again (5: the cheap features became one scan of the sample,
#: at half the cost a model of the old code charges a policy for them; 6: delta codecs
#: are also timed on pages with 1/48 to half of their words changed; 7: the cheap
#: features' cost is fitted per page sampled, not per page of the window sampled; 8: the
#: C scan computes the sample's entropy, at a quarter less than the features cost before;
#: 9: delta codecs are priced per changed word and run, on pages changed in three patterns;
#: 10: the cheap features are timed after the arms encoded the pages they read; 11: each
#: policy that buys probes has its decision of which timed; 12: per call and per arm, and
#: under the throughput objective and another: ``decisions``; 13: auto's probe valuation
#: in C, a decision at about two thirds of its cost; 14: auto decides for the CPU and wire
#: objectives in float operations too, as for throughput: ``Objective.loss_rates``)
CALIBRATION_RECIPE = 14
#: the shares of a held version's words changed that delta codecs are timed on (1: a
#: rewritten page; see _calibration_windows)
CHANGED_SHARES = (1 / 512, 1 / 64, 1 / 48, 1 / 24, 1 / 8, 1 / 4, 1 / 2, 1.0)


class CostModelError(ValueError):
    """A cost model file is missing, unreadable or does not cover the arms asked for."""


#: the largest cost model file read (one is a few KiB: some coefficients per arm)
MAX_COST_MODEL_BYTES = 16 << 20
#: what to do about a model file that holds no model this migcodec reads, when the file is
#: this machine's calibration: migcodec keeps it, and writes it again when calibrating
RECALIBRATE = "calibrate again to replace it"


@dataclass(frozen=True)
class Work:
    """What some encode calls of one arm did: the cost model's input."""

    calls: float
    pages: float  # non-zero pages
    out_bytes: float  # what the calls wrote for the non-zero pages
    zero_pages: float = 0.0
    words: float = 0.0  # changed 8-byte words of the pages a delta codec compared
    runs: float = 0.0  # and their runs of changed bytes

    def ratio(self, page_size: int) -> float:
        """The arm's ratio over the non-zero pages: the content class they fall in."""
        if self.pages <= 0:
            return 1.0
        return self.pages * page_size / max(self.out_bytes, 1.0)


@dataclass
class ArmCost:
    """One arm's coefficients: seconds per call, per zero page, per non-zero page at each
    ratio of :data:`KNOTS` (interpolated in log ratio, held flat beyond the ends), and per
    changed word and run of changed bytes (a delta codec's; 0 for a compressor)."""

    per_call: float
    per_zero_page: float
    per_page: list[float]
    #: median |model - measured| / measured over the calibration windows
    fit_error: float = 0.0
    per_word: float = 0.0
    per_run: float = 0.0

    def page_cost(self, ratio: float | np.ndarray) -> float | np.ndarray:
        return np.interp(np.log(np.maximum(ratio, 1.0)), _LOG_KNOTS, self.per_page)

    def cpu_s(self, work: Work, page_size: int) -> float:
        return float(
            self.per_call * work.calls
            + self.per_zero_page * work.zero_pages
            + self.page_cost(work.ratio(page_size)) * work.pages
            + self.per_word * work.words
            + self.per_run * work.runs
        )

    def cpu_arrays(
        self, calls, pages, out_bytes, zero_pages, page_size: int, words=0.0, runs=0.0
    ) -> np.ndarray:
        """Vectorised :meth:`cpu_s` over arrays of windows."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(pages > 0, pages * page_size / np.maximum(out_bytes, 1.0), 1.0)
        return (
            self.per_call * calls
            + self.per_zero_page * zero_pages
            + self.page_cost(ratio) * pages
            + self.per_word * words
            + self.per_run * runs
        )


_LOG_KNOTS = np.log(np.array(KNOTS))


#: the most seconds any coefficient may be (per call, zero page, page, changed word or
#: run): a codec that took a second per page of 4 KiB would encode at 4 KiB/s, thousands
#: of times slower than any there is; a larger coefficient is damage, and one near the
#: largest float turns every score it enters to inf or nan
MAX_COST_S = 1.0


def is_cost_s(x: object) -> bool:
    """Whether ``x`` is seconds a model may hold: a number from 0 to :data:`MAX_COST_S`
    (compared, not converted: see :func:`checked_arm_cost`)."""
    return _number(x) and 0 <= x <= MAX_COST_S


def checked_arm_cost(label: str, fields: dict) -> ArmCost:
    """One arm's coefficients as a file holds them, checked: seconds are numbers from 0 to
    :data:`MAX_COST_S`, the fit's error a finite number of at least 0, and the curve has a
    cost at every knot. Compared, not converted: a JSON integer too large for a float
    (``1e400`` written out) fails the bound instead of raising ``OverflowError``."""
    names = [f.name for f in fields_of(ArmCost)]
    if not isinstance(fields, dict) or set(fields) - set(names) or set(_REQUIRED) - set(fields):
        shown = sorted(fields) if isinstance(fields, dict) else f"a JSON {type(fields).__name__}"
        raise ValueError(
            f"arm {label!r} holds {shown}; a calibration writes {', '.join(names)} "
            f"({', '.join(_REQUIRED)} at least)"
        )
    if not isinstance(fields["per_page"], list):
        raise ValueError(
            f"arm {label!r} has per-page costs {_shown(fields['per_page'])}, not a list of "
            f"{len(KNOTS)}"
        )
    cost = ArmCost(**fields)
    seconds = [cost.per_call, cost.per_zero_page, *cost.per_page, cost.per_word, cost.per_run]
    if (
        len(cost.per_page) != len(KNOTS)
        or not all(is_cost_s(x) for x in seconds)
        or not (_number(cost.fit_error) and 0 <= cost.fit_error <= sys.float_info.max)
    ):
        bad = [x for x in cost.per_page if not is_cost_s(x)]
        pages = f"{len(cost.per_page)} per-page costs for {len(KNOTS)} knots" + (
            f" ({', '.join(_shown(x) for x in bad[:3])} among them)" if bad else ""
        )
        raise ValueError(
            f"arm {label!r} has coefficients no calibration writes (per call "
            f"{_shown(cost.per_call)}, per zero page {_shown(cost.per_zero_page)}, "
            f"{pages}, per word "
            f"{_shown(cost.per_word)}, per run {_shown(cost.per_run)}, fit error "
            f"{_shown(cost.fit_error)}; seconds must be from 0 to {MAX_COST_S:g})"
        )
    return cost


#: the fields of an arm's coefficients that every model file holds
_REQUIRED = ("per_call", "per_zero_page", "per_page")


def _shown(x: object) -> str:
    """``x`` for a message: an integer too long to read is told by its digits."""
    return format_number(x) if type(x) is int else repr(x)


def _shown_json(x: object) -> str:
    """A JSON value of a file for a message: short values as they are, others by kind."""
    text = repr(x)
    return text if len(text) <= 40 else f"a JSON {type(x).__name__}"


#: the batches a model is calibrated for: those a migration stream's frame carries
_BATCH_PAGES = Field(
    (int,),
    check=lambda v: 1 <= v <= MAX_BATCH_PAGES,
    rule=f"a whole number from 1 to {MAX_BATCH_PAGES}",
)


def _number(x: object) -> bool:
    """Whether ``x`` is a number as JSON reads one (an int or a float, not a flag; numpy's
    floats, which a calibration fits, are floats)."""
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass
class CostModel:
    """Coefficients per arm label, for one page size and batch size, on one machine."""

    page_size: int
    batch_pages: int
    arms: dict[str, ArmCost]
    machine: dict = field(default_factory=dict)
    created: str = ""
    #: set by :func:`machine_cost_model` on a model it calibrated, for its user: why the
    #: calibration saved before was not used, or why this one could not be kept (the
    #: next run then calibrates again, and its numbers may differ), else ``None``
    note: str | None = field(default=None, compare=False, repr=False)

    def cpu_s(self, label: str, work: Work) -> float:
        return self.arm(label).cpu_s(work, self.page_size)

    def arm(self, label: str) -> ArmCost:
        try:
            return self.arms[label]
        except KeyError:
            raise CostModelError(
                f"the cost model has no arm {label!r} (it covers {', '.join(self.arms)}); "
                "calibrate it again with this arm"
            ) from None

    def save(self, path: str | os.PathLike, through_links: bool = True) -> None:
        """Write the model, sealed, to ``path``; :class:`CostModelError` when a part of it
        would not load back as it is (``migcodec.files.json_problem``), before anything is
        written. A symbolic link at ``path`` is written through unless ``through_links``
        is false (:meth:`LocalLocation.write_bytes`)."""
        doc = {
            "version": COST_MODEL_VERSION,
            "page_size": self.page_size,
            "batch_pages": self.batch_pages,
            "machine": self.machine,
            "created": self.created,
            "arms": {label: asdict(cost) for label, cost in self.arms.items()},
        }
        problem = json_problem(doc, "the model")
        if problem is None and type(self.created) is not str:  # loaded back as text
            problem = f"its created is {self.created!r}, not a string"
        if problem is not None:
            raise CostModelError(f"cannot save cost model to {path}: {problem}")
        # beside under a name of this write's own, then renamed: two processes calibrating
        # at once each leave a whole file
        text = (json.dumps(seal(doc), indent=2) + "\n").encode()
        LocalLocation(Path(path)).write_bytes(text, through_links)

    @classmethod
    def load(cls, path: str | os.PathLike, remedy: str = RECALIBRATE) -> CostModel:
        """The model :meth:`save` wrote to ``path``; :class:`CostModelError` when the file
        is missing, of another version, edited or damaged since (its seal), or holds
        coefficients no calibration writes (negative, not finite, a curve of another
        length). Only a regular file of at most :data:`MAX_COST_MODEL_BYTES` is read: a
        pipe, a device or a larger file is refused before it is read whole.

        ``remedy`` ends the message about a file that holds no model this migcodec reads:
        calibrating again replaces this machine's calibration, not a file a user named."""
        try:
            try:
                raw = read_small_file(
                    path, "cost model", MAX_COST_MODEL_BYTES, "give a cost model JSON file"
                )
            except ValueError as exc:  # a pipe, a device, a file larger than any model
                raise CostModelError(str(exc)) from None
            doc = parse_json(raw.decode())
            version = doc.get("version") if isinstance(doc, dict) else None
            if version != COST_MODEL_VERSION:
                raise CostModelError(
                    f"cost model {path} has version {_shown_json(version)}, expected "
                    f"{COST_MODEL_VERSION}; {remedy}"
                )
            doc = unseal(doc)
            if not isinstance(doc.get("arms"), dict):
                raise ValueError(
                    f"its arms are {_shown_json(doc.get('arms'))}, not an object of each arm's "
                    "coefficients by label"
                )
            arms = {label: checked_arm_cost(label, c) for label, c in doc["arms"].items()}
            page_size, batch_pages = doc.get("page_size"), doc.get("batch_pages")
            for name, value, rule in (
                ("page_size", page_size, MANIFEST_SCHEMA["page_size"]),
                ("batch_pages", batch_pages, _BATCH_PAGES),
            ):
                if type(value) is not int or not rule.check(value):
                    raise ValueError(f"{name} is {_shown(value)}, not {rule.rule}")
            if not isinstance(doc.get("machine", {}), dict):
                raise ValueError(f"its machine is {_shown_json(doc['machine'])}, not an object")
            return cls(
                page_size,
                batch_pages,
                arms,
                dict(doc.get("machine", {})),
                str(doc.get("created", "")),
            )
        except RecursionError:  # Python's parser gives up on deep nesting
            raise CostModelError(
                f"cannot read cost model {path}: its JSON is nested too deeply to be a cost "
                f"model; {remedy}"
            ) from None
        except OSError as exc:  # the file could not be read, whatever it holds
            raise CostModelError(f"cannot read cost model {path}: {exc}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, CostModelError):
                raise
            raise CostModelError(f"cannot read cost model {path}: {exc}; {remedy}") from exc

    def fit_report(self) -> dict[str, float]:
        """Median relative error of each arm's fit on its calibration windows."""
        return {label: cost.fit_error for label, cost in self.arms.items()}


def machine_identity() -> dict:
    """What makes timings of one machine comparable: CPU, cores, Python, numpy, and the
    code timed: migcodec's version, the calibration recipe, and whether its C kernels are
    built (a new version or a first build with a compiler calibrates again instead of
    reusing slower timings)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "migcodec": __version__,
        "recipe": CALIBRATION_RECIPE,
        "kernels": {
            "pagescan": CHANGE_SCAN == "C extension",
            "deltas": delta_kernels.native is not None,
            # auto's probe valuation: part of what its decisions cost
            "probes": optional_extension("migcodec.selector._probes")[0] is not None,
        },
    }


def default_path(page_size: int, batch_pages: int) -> Path:
    """Where this machine's calibration is kept (``$XDG_CACHE_HOME/migcodec``)."""
    import hashlib

    ident = json.dumps([machine_identity(), page_size, batch_pages])
    key = hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()
    # an empty or relative $XDG_CACHE_HOME is ignored, as the XDG specification says: taken,
    # it put the calibration in the working directory, and numbers moved with it
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = (Path(cache) if os.path.isabs(cache) else Path.home() / ".cache") / "migcodec"
    return base / f"cost-model-{key}.json"


def payload_bytes(out_bytes, n_pages, batch_pages: int):
    """What encode calls wrote for their non-zero pages: their output without the one-byte
    mode of every page and the run of every batch (one run per batch)."""
    return out_bytes - n_pages - np.ceil(n_pages / batch_pages) * RUN_BYTES


def window_work(
    pages: np.ndarray, out_bytes: float, batch_pages: int, previous: np.ndarray | None = None
) -> Work:
    """The :class:`Work` of encoding ``pages`` in ``batch_pages``-page batches that wrote
    ``out_bytes``, against ``previous`` (what the destination holds of every page) for a
    delta codec."""
    n = pages.shape[0]
    zero = zero_page_rows(pages)
    n_zero = 0 if zero is None else int(np.count_nonzero(zero))
    payload = max(float(payload_bytes(out_bytes, n, batch_pages)), 0.0)
    words = runs = 0.0
    if previous is not None and n > n_zero:
        rows = None if zero is None else np.flatnonzero(~zero)  # None: every page
        changes = page_changes(pages, previous, rows)
        words, runs = float(changes.words.sum()), float(changes.byte_runs.sum())
    return Work(-(-n // batch_pages), n - n_zero, payload, n_zero, words, runs)


#: how the calibration changes a held version's words (see _changed): every byte of a
#: word, one byte of it, or words in runs of this many adjacent words
CHANGE_PATTERNS = ("words", "bytes", "runs")
_RUN_WORDS = 8


def _changed(pages: np.ndarray, share: float, pattern: str, rng) -> np.ndarray:
    """A version of ``pages`` the destination might hold: about ``share`` of its words
    differ, in ``pattern`` (:data:`CHANGE_PATTERNS`). Words and runs of changed bytes vary
    apart across patterns, so a fit can tell what a delta codec's time follows."""
    previous = pages.copy()
    words = previous.view(np.uint64)
    if pattern == "runs":  # a run of _RUN_WORDS words starts at about share / _RUN_WORDS
        starts = rng.random(words.shape) < share / _RUN_WORDS
        hit = starts.copy()
        for k in range(1, _RUN_WORDS):  # a few shifts of the whole mask, not a loop per word
            hit[:, k:] |= starts[:, :-k]
    else:
        hit = rng.random(words.shape) < share
    flip = 0x0101010101010101 if pattern != "bytes" else 0x0000000001000000
    words[hit] ^= np.uint64(flip)
    return previous


#: the largest batch the calibration encodes (see :func:`calibrate`)
CALIBRATION_BATCH_PAGES = 256


def _calibration_windows(page_size: int, batch_pages: int, seed: int = 0):
    """(pages, previous) pairs of every content class and size: what the fit is made on.

    Every kind of page, alone and in whole batches; against no held version, and (for
    delta codecs) a version with a share of its words changed (:func:`_changed`: in every
    pattern for whole batches, whose timings fit the costs per word and run), or rewritten.
    Zero pages are held by no one: the framework sends them as markers for every codec.

    The shares run from a few words to a page rewritten, through pages with a quarter or
    half of their words changed, where an encoder of changed runs does the most work per
    page (a rewritten page overflows its record and is given up early)."""
    rng = np.random.default_rng(seed)
    for kind in ("zero", "ones", "seq", "text", "memcached", "random", "mixed"):
        for n in (1, 2 * batch_pages):
            pages = generate_pages(kind, n, int(rng.integers(1 << 30)), page_size)
            yield pages, None
            if kind == "zero":
                continue
            for pattern in CHANGE_PATTERNS if n > 1 else CHANGE_PATTERNS[:1]:
                for share in CHANGED_SHARES:
                    yield pages, _changed(pages, share, pattern, rng)


def _timed_window(
    codec: Codec, pages: np.ndarray, previous: np.ndarray | None, batch_pages: int
) -> tuple[float, int]:
    """CPU seconds of encoding ``pages`` in batches (only the codec calls), and output bytes;
    whatever the codec's own code raises is a :class:`~migcodec.codecs.CodecFailed`. Each
    encode is this thread's codec call while it runs (see :mod:`migcodec.codecs.bounded`)."""
    n, page_size = pages.shape
    destination = None
    if codec.reads_destination and previous is not None:
        destination = DestinationMirror.holding(np.arange(n, dtype=np.int64), previous)
    cpu = 0.0
    out = 0
    watch = codec_watch()
    with failures_of(codec.name, "to encode the pages it is calibrated on"):
        for first in range(0, n, batch_pages):  # one iteration per batch, not per page
            batch = Batch(pages, [(first, min(batch_pages, n - first))], page_size, batch_pages)
            encoded, cpu_s = watch.encoding(codec, batch, destination)
            cpu += cpu_s
            out += encoded.stats.output_bytes
    return cpu, out


def _fit(works: list[Work], times: np.ndarray, page_size: int, per_change: bool) -> ArmCost:
    """Per-call and zero-page costs from the windows of zero pages and of one page; the
    rest from the whole-batch windows: a compressor's curve binned by ratio between the
    knots, a delta codec's (``per_change``) costs per page, changed word and run."""
    calls = np.array([w.calls for w in works])
    pages = np.array([w.pages for w in works])
    zeros = np.array([w.zero_pages for w in works])
    ratios = np.array([w.ratio(page_size) for w in works])
    all_zero = pages == 0
    # zero windows: time = per_call x calls + per_zero_page x zero pages
    a = np.stack([calls[all_zero], zeros[all_zero]], axis=1)
    per_call, per_zero = np.linalg.lstsq(a, times[all_zero], rcond=None)[0]
    per_zero = max(float(per_zero), 0.0)
    big = (calls > 1) & (pages > 0)
    rest = times[big] - per_call * calls[big] - per_zero * zeros[big]
    if per_change:
        counts = np.array([[w.pages, w.words, w.runs] for w in works])[big]
        per_page, per_word, per_run = _least_squares_at_least_zero(counts, rest)
        cost = ArmCost(
            max(float(per_call), 0.0), per_zero, [per_page] * len(KNOTS), 0.0, per_word, per_run
        )
    else:
        each = rest / pages[big]
        log_r = np.log(np.maximum(ratios[big], 1.0))
        curve = np.empty(len(KNOTS))
        for k, knot in enumerate(_LOG_KNOTS):  # each knot: the windows nearest it, by distance
            weight = 1.0 / (np.abs(log_r - knot) + 0.05) ** 2
            curve[k] = float(np.sum(weight * each) / np.sum(weight))
        cost = ArmCost(max(float(per_call), 0.0), per_zero, np.maximum(curve, 0.0).tolist())
    # the per-call cost seen by calls of one non-zero page (the fixed part of a probe)
    one = (pages == 1) & (calls == 1)
    if one.any():
        cost.per_call = 0.0
        variable = np.array([cost.cpu_s(w, page_size) for w in works])
        cost.per_call = max(float(np.median(times[one] - variable[one])), 0.0)
    predicted = np.array([cost.cpu_s(w, page_size) for w in works])
    cost.fit_error = float(np.median(np.abs(predicted - times) / np.maximum(times, 1e-9)))
    return cost


def _least_squares_at_least_zero(a: np.ndarray, y: np.ndarray) -> list[float]:
    """Coefficients of ``a``'s columns fitting ``y`` by least squares, none negative: a
    column whose coefficient comes out negative is left out and the rest fitted again (a
    cost is never negative; with three columns this is the exact answer in a few steps)."""
    active = list(range(a.shape[1]))
    coef = np.zeros(a.shape[1])
    while active:
        fit = np.linalg.lstsq(a[:, active], y, rcond=None)[0]
        if (fit >= 0).all():
            coef[active] = fit
            break
        active.pop(int(np.argmin(fit)))
    return [float(c) for c in coef]


def _fit_features(arms: list, page_size: int, batch_pages: int, repeats: int) -> ArmCost:
    """The cheap features' cost: a fixed part and a part per sampled page (text against a
    held version, the delta estimates included), fitted to samples of 1 page up to the
    largest a window reads. Every other held page has a few words
    changed and the rest were rewritten: comparing a rewritten page costs several times a
    sparse one, and real programs' windows hold both (sparse ones alone made the model half
    of what features cost on recorded traces)."""
    from migcodec.selector.features import FeatureExtractor

    extractor = FeatureExtractor([a.codec for a in arms], batch_pages=batch_pages)
    sizes = (1, 8, extractor.sample_pages, extractor.max_sample_pages)
    pages = generate_pages("text", max(sizes), 0, page_size)
    previous = pages.copy()
    previous.view(np.uint64)[::2, ::64] ^= np.uint64(1)
    previous[1::2] = generate_pages("text", max(sizes), 1, page_size)[1::2]
    # twice the repeats of the arms' fit, and one: caches left by the encoders vary, and
    # 7 repeats put one machine's fixed part anywhere from 13 to 28 us
    repeats = 2 * repeats + 1
    times = np.zeros((repeats, len(sizes)))
    for r in range(repeats):
        for i, n in enumerate(sizes):
            # read after every arm encoded the pages, as a table measures a window's
            # features: the scan is bound by memory, and on pages the encoders have just
            # pushed out of the nearer caches it takes 2-3 times as long as on pages it
            # read a moment ago (timed so, the fit came out at half of what the features
            # cost in measured tables of recorded programs)
            for arm in arms:
                held = previous[:n] if arm.codec.reads_destination else None
                _timed_window(arm.codec, pages[:n], held, batch_pages)
            # the n pages are the sample (``sampled``): the cost is fitted per page read,
            # as a table prices it (a window of n pages would read only sample_size(n))
            features = extractor.extract(pages[:n], previous[:n], probe=False, sampled=True)
            times[r, i] = features.cheap_s
    median = np.median(times, axis=0)
    slope, fixed = np.polyfit(np.array(sizes, dtype=float), median, 1)
    slope, fixed = max(float(slope), 0.0), max(float(fixed), 0.0)
    predicted = fixed + slope * np.array(sizes)
    error = float(np.median(np.abs(predicted - median) / np.maximum(median, 1e-9)))
    return ArmCost(fixed, 0.0, [slope] * len(KNOTS), error)


def _decision_labels() -> set[str]:
    return {
        probe_decision_label(policy, throughput)
        for policy in probe_policies()
        for throughput in (True, False)
    }


def calibrate(
    arms: list,
    page_size: int = 4096,
    batch_pages: int = 64,
    repeats: int = 7,
    progress=None,
) -> CostModel:
    """Fit every arm's cost model to median timings of the calibration windows.

    ``arms`` are :class:`~migcodec.selector.arms.Arm` (their labels name them in the model).
    Repeats are interleaved across windows and arms: each repeat times every arm on every
    window before the next begins, so a burst of load (or a slow spell of a shared host,
    which can halve its speed for seconds) hits one sample of every arm alike rather than
    every sample of one arm. A policy compares arms, so what the model must get right is
    their costs relative to each other; calibrated one after another, two arms a few tens
    of percent apart came out in either order from one calibration to the next.
    ``progress(done, total)`` is called after each repeat.

    The windows are of batches of at most :data:`CALIBRATION_BATCH_PAGES` pages: the fit
    is per call and per page, so it holds for larger batches, and at the largest a stream
    carries (4096 pages) an evaluation's calibration grew past 5 GB and ran for minutes.
    """
    model_batch = batch_pages
    batch_pages = min(batch_pages, CALIBRATION_BATCH_PAGES)
    windows = list(_calibration_windows(page_size, batch_pages))
    codecs = [arm.codec for arm in arms]
    # a compressor against no held version; a delta codec against held versions (and zero
    # pages, which no codec sees)
    chosen = [
        [
            (pages, previous)
            for pages, previous in windows
            if (previous is not None) == codec.reads_destination or not pages.any()
        ]
        for codec in codecs
    ]
    samples = [np.zeros((repeats, len(c))) for c in chosen]
    outs = [[0] * len(c) for c in chosen]
    for r in range(repeats):
        for a, codec in enumerate(codecs):
            # untimed, so that the first window is timed warm like the rest (its first call
            # after another codec's windows took a 1-page window 5-8 times as long, and the
            # per-call cost fitted to it came out at that)
            _timed_window(codec, *chosen[a][0], batch_pages)
            for i, (pages, previous) in enumerate(chosen[a]):
                samples[a][r, i], outs[a][i] = _timed_window(codec, pages, previous, batch_pages)
        if progress is not None:
            progress(r + 1, repeats)
    result = {}
    for a, arm in enumerate(arms):
        held = arm.codec.reads_destination
        works = [
            window_work(pages, out, batch_pages, previous if held else None)
            for (pages, previous), out in zip(chosen[a], outs[a], strict=True)
        ]
        result[arm.label] = _fit(works, np.median(samples[a], axis=0), page_size, held)
    result[FEATURES_LABEL] = _fit_features(arms, page_size, batch_pages, repeats)
    result.update(fit_probe_decisions(result, page_size, batch_pages))
    return CostModel(
        page_size,
        model_batch,
        result,
        machine_identity(),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def machine_cost_model(
    arms: list, page_size: int = 4096, batch_pages: int = 64, repeats: int = 21
) -> CostModel:
    """This machine's cost model covering ``arms``: the saved calibration, with arms it
    does not cover yet calibrated and saved for next time.

    21 repeats (about 2.5 s on 2 cores, once per machine): a shared host's slow spells last
    a second or more, long enough to hold most samples of some arms in fewer repeats.
    Six calibrations of 7 repeats in a row put zstd's and XBZRLE's costs per page up to
    1.5 and 1.75 times apart (one of them in a slow spell), against lz4's within 7 %; five
    of 21 repeats agreed within 3 %, the cheap features within 8 %."""
    path = default_path(page_size, batch_pages)
    saved, problem = _saved_model(path, page_size, batch_pages)
    missing = [a for a in arms if saved is None or a.label not in saved.arms]
    if saved is not None and not missing:
        return saved
    model = calibrate(missing, page_size, batch_pages, repeats)
    # merged with what is saved now, not only with what was read before calibrating: two
    # runs calibrating other arms at once each saved theirs alone, and the next run of the
    # first calibrated its arms again, and gave other numbers
    latest, _ = _saved_model(path, page_size, batch_pages)
    if latest is not None:
        # every entry saved first stands, the features' cost and the probe decisions'
        # with them: fitted again beside only the arms missing (the features read after
        # fewer encoders had pushed the pages out of the caches), they changed what every
        # later calibrated comparison charged, and the same comparison gave other numbers
        # after another one named a new arm
        model.arms = {
            **latest.arms,
            **{
                label: cost
                for label, cost in model.arms.items()
                if label not in latest.arms
                and label != FEATURES_LABEL
                and label not in _decision_labels()
            },
        }
    notes = [] if problem is None else [problem]
    try:
        model.save(path, through_links=False)
    except OSError as exc:  # a read-only home: the model is used, not kept
        notes.append(
            f"this calibration could not be kept at {path} ({exc.strerror or exc}): the "
            "next run calibrates again, and its numbers may differ"
        )
    model.note = "; ".join(notes) or None
    return model


def _saved_model(
    path: Path, page_size: int, batch_pages: int
) -> tuple[CostModel | None, str | None]:
    """The calibration saved at ``path`` for this machine and configuration, if any, and
    why one there is not used where it is not (damaged, or unreadable)."""
    try:
        if not path.exists():
            return None, None
        saved = CostModel.load(path)
    except CostModelError as exc:  # damaged or old: calibrated again
        return None, f"the calibration saved at {path} was not used ({exc}), and was made again"
    except OSError as exc:
        return None, (
            f"the calibration saved at {path} could not be read ({exc.strerror or exc}), "
            "and was made again"
        )
    if (saved.page_size, saved.batch_pages) != (page_size, batch_pages) or (
        saved.machine != machine_identity()
    ):
        return None, None  # another machine's or configuration's: calibrated again
    problem = _unusable(saved)
    if problem is not None:
        return None, f"the calibration saved at {path} was not used ({problem}), and was made again"
    return saved, None


#: the arms a probe decision is priced among when a saved calibration is checked: the
#: most any policy of migcodec's takes (``MAX_ARMS`` in ``_probes.c``)
_PRICED_ARMS = 256


def _unusable(model: CostModel) -> str | None:
    """Why a calibration whose every entry reads well cannot price an evaluation: one
    without the cheap features' entry, which every calibration writes, failed every
    evaluation with advice to calibrate again that nothing then did; and one whose probe
    decisions cost more than a second each failed every table made with it."""
    if FEATURES_LABEL not in model.arms:
        return f"it has no entry {FEATURES_LABEL!r}"
    for policy, prices in decision_prices(model, _PRICED_ARMS).items():
        if not all(is_cost_s(price) for price in prices):
            return (
                f"a probe decision of {policy!r} among {_PRICED_ARMS} arms costs "
                f"{' and '.join(format_number(price) for price in prices)} s, more than "
                f"{format_number(MAX_COST_S)}"
            )
    return None
