"""The one interface every policy implements, and the policy registry.

A policy is bound to a number of arms (and the objective, for policies that predict rewards
from features), then per window: ``choose(features) -> arm index`` and ``update(arm, reward,
features, outcome)``. Both are plain numpy/Python arithmetic on a few arms, cheap against
a window; ``benchmarks/selector.py`` times the pair.

A policy is fully described by its config (numcodecs' convention): ``get_config()`` gives a
JSON-ready dict with its ``name``, ``policy_from_config`` rebuilds an equal, unbound policy.
Learnt state is not part of the config.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import typing
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from migcodec.codecs import CodecKind
from migcodec.selector.features import CONTEXT_NAMES, WindowFeatures
from migcodec.selector.objectives import Objective, Outcome, Throughput
from migcodec.selector.spec import parse_spec
from migcodec.units import format_number

POLICIES: dict[str, type[Policy]] = {}

#: the largest count of windows a parameter may span (a sliding window, a probe): a window
#: is thousands of pages, so a million of them is terabytes of pages encoded, more than any
#: migration sends, and what a policy holds per window stays a few megabytes
MAX_WINDOWS = 1_000_000


class PolicyError(ValueError):
    """A policy was configured or used wrongly; the message says how to fix it."""


#: the largest finite float: a bound every finite count, time and reward is within
_LARGEST = sys.float_info.max


def check_outcome(outcome: Outcome) -> None:
    """Refuse an outcome any count or time of which (``device_s`` and ``zero_pages`` when
    given) is not a finite number of at least 0, with :class:`PolicyError` naming the
    field and its value. Chained comparisons on the hot path (a few tens of nanoseconds):
    nan fails every one, and an int too large for a float fails the bound, as inf does."""
    guest, sent, wall, cpu, device, zero = outcome
    try:
        if (
            0.0 <= guest <= _LARGEST
            and 0.0 <= sent <= _LARGEST
            and 0.0 <= wall <= _LARGEST
            and 0.0 <= cpu <= _LARGEST
            and (device is None or 0.0 <= device <= _LARGEST)
            and (zero is None or 0.0 <= zero <= _LARGEST)
        ):
            return
    except TypeError:  # a field that is no number: named below
        pass
    for name, value in zip(Outcome._fields, outcome, strict=True):
        if value is None and name in ("device_s", "zero_pages"):
            continue
        if not _within(value, _LARGEST):
            raise PolicyError(
                f"outcome {name} must be a finite number of at least 0, got {value!r}; "
                "report what the window's encoding measured (Decision.add adds up each "
                "batch's Encoded.stats)"
            )


def _within(value: object, high: float, low: float = 0.0) -> bool:
    """Whether ``value`` is a number (not a flag) from ``low`` to ``high``: nan is not."""
    number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    return number and low <= value <= high


#: the shape of :attr:`WindowFeatures.context`
_CONTEXT_SHAPE = (len(CONTEXT_NAMES),)
#: the features holding one entry per arm
_PER_ARM = ("predicted_ratio", "predicted_rate", "probe_s", "delta_bytes", "probe_out")


def check_features(features: WindowFeatures, n_arms: int) -> None:
    """Refuse features a caller made that no policy can read, with :class:`PolicyError`
    naming the field: a context not of :data:`CONTEXT_NAMES`' length or not of numbers
    from 0 to 1 (a regression learning from nan learns nothing again), a count, cost, share
    or variance (``pages``, ``sample``, ``held_frac``, ``cheap_s``, ``change_runs``, ``words_var``,
    ``probe_pages``) that is not a finite number of at least 0 (``held_frac`` at most 1), a
    covariance (``words_runs_cov``) that is not finite, a per-arm array not of one entry
    per arm, or probe costs (``probe_s``) that are not finite and at least 0. Per-arm
    predictions and estimates may hold nan: an arm not probed, not a delta arm.

    Checked where features come from a caller (:meth:`Selector.choose
    <migcodec.selector.online.Selector.choose>` with ``features``); a
    :class:`~migcodec.selector.features.FeatureExtractor`'s and a checked table's are of
    this shape by construction and are not checked again. On the decision's hot path: a
    few comparisons and sums in Python floats (on a few entries a numpy call costs more)."""
    f = features
    try:
        scalars = (
            f.pages,
            f.sample,
            f.held_frac,
            f.cheap_s,
            f.change_runs,
            f.words_var,
            f.words_runs_cov,
            f.probe_pages,
        )
        context = f.context.tolist()
        total = sum(scalars) + sum(context)
        # nan for any nan or inf (or a sum past the largest float): all finite; the context
        # is shares (entropy scaled to 0..1), and one of 1e300 overflowed auto's drift
        ok = (
            total - total == 0.0
            and f.context.shape == _CONTEXT_SHAPE
            and min(context) >= 0.0
            and max(context) <= 1.0
            and f.pages >= 0.0
            and f.sample >= 0
            and 0.0 <= f.held_frac <= 1.0
            and f.cheap_s >= 0.0
            and f.change_runs >= 0.0
            and f.words_var >= 0.0
            and f.probe_pages >= 0
        )
        arms = (n_arms,)
        for value in (f.predicted_ratio, f.predicted_rate, f.probe_s, f.delta_bytes, f.probe_out):
            if value is not None and value.shape != arms:
                ok = False
        if ok and f.probe_s is not None:  # in Python floats: a numpy call costs more
            seconds = f.probe_s.tolist()
            total = sum(seconds)
            ok = total - total == 0.0 and min(seconds) >= 0.0
    except (AttributeError, TypeError, OverflowError):  # no array, no number, too large
        ok = False
    if not ok:
        _refuse_features(f, n_arms)


def _refuse_features(f: WindowFeatures, n_arms: int) -> None:
    """:func:`check_features`'s message: the first field at fault, named."""
    context = f.context
    try:
        values = context.tolist() if context.shape == _CONTEXT_SHAPE else [math.nan]
        within = all(0.0 <= v <= 1.0 for v in values)
    except (AttributeError, TypeError):
        within = False
    if not within:
        raise PolicyError(
            f"features context must be {len(CONTEXT_NAMES)} numbers from 0 to 1 "
            f"({', '.join(CONTEXT_NAMES)}), got {context!r}"
        )
    for name in (
        "pages",
        "sample",
        "held_frac",
        "cheap_s",
        "change_runs",
        "words_var",
        "probe_pages",
    ):
        value = getattr(f, name)
        high = 1.0 if name == "held_frac" else _LARGEST
        if not _within(value, high):
            needed = "in [0, 1]" if name == "held_frac" else "finite, at least 0"
            raise PolicyError(f"features {name} must be a number {needed}, got {value!r}")
    cov = f.words_runs_cov
    if not _within(cov, _LARGEST, -_LARGEST):
        raise PolicyError(f"features words_runs_cov must be a finite number, got {cov!r}")
    for name in _PER_ARM:
        value = getattr(f, name)
        if value is not None and getattr(value, "shape", None) != (n_arms,):
            got = getattr(value, "shape", type(value).__name__)
            raise PolicyError(
                f"features {name} must hold one entry per arm, shape ({n_arms},), got {got}"
            )
    probe_s = f.probe_s
    if probe_s is not None and not all(0.0 <= v <= _LARGEST for v in probe_s.tolist()):
        raise PolicyError(
            f"features probe_s must be each arm's probe seconds, finite and at least 0, "
            f"got {probe_s!r}"
        )
    # else the quick check's sum of finite values passed the largest float: they are right


class Policy(ABC):
    """Base class. Subclasses set ``name``, take parameters as keyword arguments (stored as
    attributes of the same name) and implement ``_reset``, ``choose`` and ``_learn``.

    ``needs`` says which features the policy reads (``none``, ``cheap`` or ``probe``); an
    evaluation charges the policy what those features cost.
    """

    name: ClassVar[str]
    needs: ClassVar[str] = "none"
    #: the policy predicts CPU time from each arm's calibrated cost model (``bind(costs=)``)
    wants_costs: ClassVar[bool] = False
    #: CPU seconds that deciding which probes to buy costs a window, where whoever runs the
    #: policy prices it (a replay of a calibrated table: its cost model's, so that replays
    #: agree), or ``None``: a policy that weighs reading features against what reading
    #: saves then times its own decisions
    probe_decision_s: float | None = None
    #: CPU seconds a decision of which probes to buy is expected to cost before the policy
    #: has timed any (the machine's calibrated price, where whoever runs the policy has
    #: one), or ``None``: a policy that times its own decisions starts from there
    probe_decision_prior_s: float | None = None
    #: the cheap features' CPU seconds on this machine, per call and per sampled page (its
    #: calibration), where whoever runs the policy has them, or ``None``
    features_prior: tuple[float, float] | None = None
    #: whether features are read on the thread that keeps the encoders fed (the engine's
    #: chooser): there a read holds the stream up for its whole time, where a replay's
    #: model puts it beside the encoders' work, over the workers
    reads_stall_encoders: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            POLICIES[cls.name] = cls

    n_arms: int = 0

    def bind(
        self,
        n_arms: int,
        objective: Objective | None = None,
        kinds: list[str] | None = None,
        *,
        labels: list[str] | None = None,
        costs: list | None = None,
        page_size: int = 4096,
        fallbacks: list[int] | None = None,
    ) -> Policy:
        """Size the policy for ``n_arms`` arms and clear what it has learnt.

        ``kinds`` and ``labels`` describe the arms; ``costs`` is each arm's calibrated cost
        model (:class:`~migcodec.selector.costmodel.ArmCost`, or ``None``) for policies that
        predict CPU time, ``page_size`` the pages' size, and ``fallbacks`` per arm the arm
        it sends pages the destination does not hold through (-1: none;
        :func:`~migcodec.selector.arms.fallback_arms`).
        """
        if n_arms < 1:
            raise PolicyError("a policy needs at least one arm")
        self.n_arms = n_arms
        self.objective = objective or Throughput()
        self.kinds = kinds or [CodecKind.COMPRESS] * n_arms
        self.labels = labels
        self.costs = costs
        self.page_size = page_size
        self.fallbacks = list(fallbacks) if fallbacks is not None else [-1] * n_arms
        self._reset()
        return self

    @abstractmethod
    def _reset(self) -> None:
        """Allocate per-arm state for ``self.n_arms`` arms."""

    @abstractmethod
    def choose(self, features: WindowFeatures | None = None) -> int:
        """The arm to use for the next window."""

    def update(
        self,
        arm: int,
        reward: float,
        features: WindowFeatures | None = None,
        outcome: Outcome | None = None,
        *,
        checked: bool = False,
    ) -> None:
        """Learn from the reward of ``arm`` (the only arm whose outcome is observed).

        Every caller comes through here. The outcome is checked first
        (:func:`check_outcome`) unless the caller ``checked`` it already
        (:meth:`Selector.finish <migcodec.selector.online.Selector.finish>`, before it
        computes the reward; a replay, whose outcomes come from a checked table): one
        window of nan, inf or negative counts or times would otherwise stay in a policy's
        sums for good (a mean of nan or inf picks arm 0 forever, a negative time reads as
        a free arm). A reward that is not finite is refused with :class:`PolicyError`: a
        checked window's utility always is.

        A window of no guest bytes teaches nothing (no codec did any work on it: its
        reward is the objective's value of nothing, "free" for throughput) and is skipped
        by every policy alike."""
        if not 0 <= arm < self.n_arms:  # -1 learnt for the last arm, and said nothing
            raise PolicyError(
                f"policy {self.name!r}: arm {arm!r} is not one of its {self.n_arms} arms "
                f"(0..{self.n_arms - 1}); give the arm choose() returned"
            )
        if outcome is not None:
            if not checked:
                check_outcome(outcome)
            if not outcome.input_bytes:
                return
        if not -_LARGEST <= reward <= _LARGEST:  # False for nan
            raise PolicyError(
                f"policy {self.name!r}: a reward must be a finite number, got {reward!r}; "
                "give the objective's utility of a window's outcome"
            )
        self._learn(arm, reward, features, outcome)

    def learn_elapsed(self, arm: int, elapsed_s: float, outcome: Outcome) -> None:
        """Learn from how long the stream took for a window ``arm`` played whole:
        ``elapsed_s`` for the batches ``outcome`` counts, as the engine timed their frames
        going out (:class:`~migcodec.selector.online.Decision`). Called after
        :meth:`update` with the same outcome, only by a caller that timed the stream (a
        replay has no stream); a policy that predicts no window's time has nothing to
        learn from it."""
        return None

    @abstractmethod
    def _learn(
        self,
        arm: int,
        reward: float,
        features: WindowFeatures | None,
        outcome: Outcome | None,
    ) -> None:
        """:meth:`update`'s work, on a checked outcome of a window with guest bytes (or
        none) and a finite reward."""

    def split(self) -> tuple[int, float] | None:
        """After :meth:`choose`: ``None`` when the arm chosen plays the whole window, or
        ``(rest, pages)`` when it plays only the window's first ``pages`` pages and arm
        ``rest`` the others. A trial of an arm whose cost no window has measured needs a
        few batches of evidence, not a whole window bet on it; and two arms, one that keeps
        the encoders busy and one that fills the link, finish a window sooner together
        than either alone (``auto``'s ``balance``). The caller then learns, by
        :meth:`update`, the outcome of the chosen arm's pages alone, and charges the
        window what both arms' parts cost. Default: never split."""
        return None

    def wants_features(self, pages: float) -> bool:
        """Whether the next window's features, ``pages`` pages of it, are worth reading.

        Features cost time on every window they are read; a policy that can tell they
        would not change its choice skips them, and is then given ``None``. Default: read
        them whenever the policy uses any and has more than one arm (with one, no choice
        is left for them to change)."""
        return self.needs != "none" and self.n_arms > 1

    def probe_mask(self, features: WindowFeatures) -> np.ndarray | None:
        """Which arms this window's probes should cover, given its cheap features
        (``None``: no probes). Called once per window, before :meth:`choose`.

        Probing costs time, so a policy asks only for the probes it will read; the caller
        computes (or, replaying a table, reveals) just those and charges their cost.
        """
        return np.ones(self.n_arms, dtype=bool) if self.needs == "probe" else None

    def charge_s(self, features: WindowFeatures | None) -> float:
        """Seconds of feature extraction this policy's decision consumed (none when it
        skipped them)."""
        return 0.0 if features is None else features.cost_s(self.needs)

    # -- configuration ---------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def config_json(self) -> str:
        return json.dumps(self.get_config(), sort_keys=True)

    @property
    def label(self) -> str:
        """The policy's name, with the parameters that differ from their defaults: the
        policy ``--codec auto`` runs is reported as plain ``auto``."""
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        args = ",".join(f"{k}={v}" for k, v in self.params().items() if v != defaults.get(k))
        return f"{self.name}({args})" if args else self.name

    def _require(
        self,
        key: str,
        value: float,
        low: float,
        high: float = math.inf,
        *,
        open_low: bool = False,
    ) -> None:
        """Refuse parameter ``key`` outside ``[low, high]`` (``(low, high]`` with
        ``open_low``), or not a finite number, with a message naming it and the range."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        inside = (
            number
            and (isinstance(value, int) or math.isfinite(value))
            and (value > low if open_low else value >= low)
            and value <= high
        )
        if not inside:
            if high == math.inf:
                needed = f"{'>' if open_low else '>='} {_show(low)}"
            else:
                needed = f"in {'(' if open_low else '['}{_show(low)}, {_show(high)}]"
            raise PolicyError(
                f"policy {self.name!r}: {key} must be {needed}, got {format_number(value)}"
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.config_json())

    def __repr__(self) -> str:
        return self.label


def _show(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def policy_from_config(config: dict[str, Any] | str) -> Policy:
    """Rebuild a policy from ``get_config()`` output (a dict or its JSON)."""
    if isinstance(config, str):
        config = json.loads(config)
    params = dict(config)
    name = params.pop("name", None)
    if not isinstance(name, str) or name not in POLICIES:  # a list or dict cannot be hashed
        raise PolicyError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    _check_params(name, params)
    try:
        return POLICIES[name](**params)
    except TypeError as exc:
        raise PolicyError(f"bad config for policy {name!r}: {exc}") from exc


def _check_params(name: str, params: dict[str, Any]) -> None:
    """Refuse a parameter the policy does not take, or of another kind than its default
    (a number, a whole number, a flag), naming it: otherwise a typo or a word where a
    number belongs fails later inside the policy's arithmetic, with a message about
    neither. A whole number written as a float (``1e3``) is made an int in ``params``,
    and an integer beyond 2**53 given for a float the float it reads as: a policy's
    arithmetic on such a Python integer (a grid file's ``10**200``, squared) raised
    ``OverflowError`` where a float gives inf."""
    cls = POLICIES[name]
    signature = inspect.signature(cls.__init__).parameters
    takes = {k: p.default for k, p in signature.items() if k != "self"}
    optional = _optional_params(cls)
    for key, value in params.items():
        if key not in takes:
            known = ", ".join(takes) or "none"
            raise PolicyError(f"policy {name!r} has no parameter {key!r}; it takes: {known}")
        default = takes[key]
        if value is None and key in optional:
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise PolicyError(f"policy {name!r}: {key} must be true or false, got {value!r}")
        elif isinstance(default, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"policy {name!r}: {key} must be a number, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                why = " (a number too large for a float reads as inf)" if value == value else ""
                raise PolicyError(
                    f"policy {name!r}: {key} must be a finite number, got {value!r}{why}"
                )
            if isinstance(default, float) and isinstance(value, int) and abs(value) > 2**53:
                if abs(value) > sys.float_info.max:
                    raise PolicyError(
                        f"policy {name!r}: {key} must be a finite number, got "
                        f"{format_number(value)} (too large for a float)"
                    )
                params[key] = float(value)
            if isinstance(default, int) and isinstance(value, float):
                if not value.is_integer():
                    raise PolicyError(
                        f"policy {name!r}: {key} must be a whole number, got {value!r}"
                    )
                params[key] = int(value)


def _optional_params(cls: type[Policy]) -> set[str]:
    """The parameters of ``cls`` that may be ``None`` (annotated ``X | None``)."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation this module cannot resolve: none is optional
        return set()
    return {k for k, h in hints.items() if k != "return" and type(None) in typing.get_args(h)}


def parse_policy(text: str) -> Policy:
    """``ucb1``, ``d-ucb:gamma=0.95``, ``fixed:arm=2`` or a JSON config."""
    if not isinstance(text, str):  # None failed on a missing attribute
        raise PolicyError(
            f"a policy is written as a string (e.g. 'auto', 'd-ucb:gamma=0.95'), got "
            f"{type(text).__name__} {text!r}; a config dict goes to policy_from_config"
        )
    return policy_from_config(parse_spec(text, "policy", PolicyError))
