"""Objectives: what one window's encoding result is worth, as a reward to maximise.

An objective sees the window's totals (guest bytes in, bytes out, encode wall and CPU time,
and for emulated hardware the modelled device time) and returns a number where higher is
better. Policies only ever compare rewards, so any monotone reward works; these three are the
ones a migration engine cares about.

``throughput`` is the default: guest bytes per second the pipeline delivers,
``min(workers x encode_rate, link x ratio)`` (Btune's compression score is the same idea).
For emulated hardware the encode rate comes from the modelled device time and the host CPU
from the submission cost; such rewards are marked ``modelled``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from migcodec import units


class ObjectiveError(ValueError):
    """An objective was configured with values it cannot use."""


def parse_rate(text: str | float) -> float:
    """Bytes per second from ``10Gbit``, ``1gbit``, ``125MB``, ``2.5e8`` (bytes/s)."""
    try:
        return units.parse_rate(text)
    except ValueError as exc:
        raise ObjectiveError(str(exc)) from exc


class Outcome(NamedTuple):
    """What encoding one window with one arm cost; the input of every objective.

    A named tuple: one is made per window and another whenever selection work is charged
    to it, on the selector's hot path, where a frozen dataclass's construction costs
    several times as much."""

    input_bytes: float
    output_bytes: float
    wall_s: float
    cpu_s: float
    device_s: float | None = None  # modelled device time of emulated hardware
    #: all-zero pages among the input (``None``: not counted); a policy that played a window
    #: on older features learns from its outcome by these, not by the older zero share
    zero_pages: float | None = None

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes > 0 else float("inf")

    def busy_s(self, clock: str = "cpu") -> float:
        """Seconds the encoder was busy: the modelled device time of emulated hardware,
        else the encoding thread's CPU time (``clock="cpu"``) or wall time."""
        if self.device_s is not None:
            return self.device_s
        return self.cpu_s if clock == "cpu" else self.wall_s

    def scaled(self, share: float) -> Outcome:
        """The outcome of ``share`` of this window's pages: every count and time in
        proportion (how a table's stored sample is scaled to its window, too)."""
        return Outcome(
            self.input_bytes * share,
            self.output_bytes * share,
            self.wall_s * share,
            self.cpu_s * share,
            None if self.device_s is None else self.device_s * share,
            None if self.zero_pages is None else self.zero_pages * share,
        )

    def joined(self, other: Outcome) -> Outcome:
        """One window of which this outcome and ``other`` encoded a part each: counts and
        times added. Device time only when both parts had one: a window that a device and
        a CPU codec shared is judged by its CPU time."""
        both = self.device_s is not None and other.device_s is not None
        zero = None
        if self.zero_pages is not None and other.zero_pages is not None:
            zero = self.zero_pages + other.zero_pages
        return Outcome(
            self.input_bytes + other.input_bytes,
            self.output_bytes + other.output_bytes,
            self.wall_s + other.wall_s,
            self.cpu_s + other.cpu_s,
            self.device_s + other.device_s if both else None,
            zero,
        )

    def charged(self, seconds: float) -> Outcome:
        """This outcome with ``seconds`` of selection work (features, probes) added to its
        wall and CPU time: what the window really cost."""
        if not seconds:
            return self
        return Outcome(
            self.input_bytes,
            self.output_bytes,
            self.wall_s + seconds,
            self.cpu_s + seconds,
            self.device_s,
            self.zero_pages,
        )


@dataclass(frozen=True)
class Objective:
    """Base: ``reward(outcome) -> float`` (higher is better) and a JSON config."""

    name = "objective"

    def reward(self, o: Outcome) -> float:
        raise NotImplementedError

    def charged_reward(self, o: Outcome, seconds: float) -> float:
        """``reward(o.charged(seconds))``: a window's reward with ``seconds`` of selection
        work charged to it, once per window on the selector's hot path (an objective may
        compute it without making the charged outcome)."""
        return self.reward(o.charged(seconds))

    def reward_arrays(self, input_bytes, output_bytes, wall_s, cpu_s, device_s=None):
        """Vectorised :meth:`reward` over numpy arrays (a whole evaluation table at once)."""
        raise NotImplementedError

    def utility(self, reward: float) -> float:
        """The additive form policies learn from: summed over windows it is the
        objective's total (up to a constant), so maximising its sum maximises the total."""
        return reward

    def utility_arrays(self, rewards):
        return rewards

    @property
    def loss_rates(self) -> tuple[float, float] | None:
        """``(cpu_rate, byte_rate)`` where a window's loss (minus its utility, per guest
        GB, times its guest GB) is ``max(cpu_s / cpu_rate, output_bytes / byte_rate)``
        (an infinite rate: that side costs nothing), with the CPU time as the policy
        predicts it; ``None`` where it is not of that form. A policy predicting every
        arm's loss per window computes it in a few float operations per arm from these
        (``auto``: about a third of its decision's time on arrays); without them, through
        :meth:`reward_arrays` and :meth:`utility_arrays`."""
        return None

    def total(self, rewards, input_bytes) -> float:
        """The objective over a whole trace: what a migration experiences (bytes-weighted)."""
        import numpy as np

        return float(np.sum(rewards * input_bytes) / np.sum(input_bytes))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    @property
    def unit(self) -> str:
        return ""


@dataclass(frozen=True)
class Throughput(Objective):
    """Guest bytes/s: ``min(workers x encode_rate, link x ratio)``.

    ``encode_rate`` is guest bytes per second of one worker: its busy time is the encoding
    thread's CPU time (``clock="cpu"``, the default: on a shared machine wall time also
    counts other processes' time slices, which a dedicated worker would not see) or wall
    time (``clock="wall"``), or the modelled device time for emulated hardware (then the
    reward is a model, not a measurement). ``workers`` is how many encoders run in
    parallel (CPU threads or device engines).
    """

    link: float = 10e9 / 8
    workers: float = 2.0
    clock: str = "cpu"
    name = "throughput"

    def __post_init__(self) -> None:
        # not "<= 0" alone: NaN passes that, and every window's reward was then refused
        # as the policy's mistake, never the objective's
        if not (_positive(self.link) and _positive(self.workers)):
            raise ObjectiveError(
                f"throughput needs a positive link rate and worker count, got link={self.link} "
                f"bytes/s, workers={self.workers}"
            )
        if self.clock not in ("cpu", "wall"):
            raise ObjectiveError(f"clock must be 'cpu' or 'wall', got {self.clock!r}")

    def reward(self, o: Outcome) -> float:
        return self.charged_reward(o, 0.0)

    def charged_reward(self, o: Outcome, seconds: float) -> float:
        # Outcome.charged, without making the charged outcome (once per window of every
        # stream): selection work runs on the host, so a device's time is not charged it
        busy = o.busy_s(self.clock)
        if o.device_s is None:
            busy += seconds
        guest, sent = o.input_bytes, o.output_bytes
        encoding = self.workers * (guest / busy if busy > 0 else math.inf)
        sending = self.link * (guest / sent if sent > 0 else math.inf)
        return sending if sending < encoding else encoding  # min(), without its call

    def reward_arrays(self, input_bytes, output_bytes, wall_s, cpu_s, device_s=None):
        import numpy as np

        own = cpu_s if self.clock == "cpu" else wall_s
        busy = own if device_s is None else np.where(np.isnan(device_s), own, device_s)
        # a time or size so small that the rate overflows is an infinite rate, as 0 is
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rate = np.where(busy > 0, input_bytes / busy, np.inf)
            ratio = np.where(output_bytes > 0, input_bytes / output_bytes, np.inf)
        return np.minimum(self.workers * rate, self.link * ratio)

    def utility(self, reward: float) -> float:
        """Minus seconds per guest GB: sums to minus the migration time. Summing bytes/s
        instead would let a few all-zero windows (huge rates, every codec alike)
        outweigh every window where the choice matters."""
        return -1e9 / reward if reward > 0 else -math.inf

    def utility_arrays(self, rewards):
        import numpy as np

        with np.errstate(divide="ignore"):
            return np.where(rewards > 0, -1e9 / rewards, -np.inf)

    @property
    def loss_rates(self) -> tuple[float, float]:
        # seconds per window: the encoders' CPU time over the workers, or its bytes over
        # the link, whichever binds
        return self.workers, self.link

    def total(self, rewards, input_bytes) -> float:
        """Guest bytes over total encode-or-send time: the migration's throughput."""
        import numpy as np

        return float(np.sum(input_bytes) / np.sum(input_bytes / rewards))

    @property
    def unit(self) -> str:
        return "guest B/s"


@dataclass(frozen=True)
class HostCpu(Objective):
    """Minus host CPU seconds per guest GB: cheapest host is best.

    For emulated hardware ``cpu_s`` is the submission cost, not the emulation's CPU; the
    table records which it is.
    """

    name = "cpu"

    def reward(self, o: Outcome) -> float:
        return -o.cpu_s / o.input_bytes * 1e9 if o.input_bytes else 0.0

    def reward_arrays(self, input_bytes, output_bytes, wall_s, cpu_s, device_s=None):
        import numpy as np

        # np.where computes both sides: an empty window's side may overflow, unused
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(input_bytes > 0, -cpu_s / input_bytes * 1e9, 0.0)

    @property
    def loss_rates(self) -> tuple[float, float]:
        return 1.0, math.inf  # CPU seconds; the bytes sent cost nothing

    @property
    def unit(self) -> str:
        return "-CPU s/GB"


@dataclass(frozen=True)
class WireBytes(Objective):
    """Minus bytes on the wire per guest byte (1/ratio): smallest output is best."""

    name = "wire"

    def reward(self, o: Outcome) -> float:
        return -o.output_bytes / o.input_bytes if o.input_bytes else 0.0

    def reward_arrays(self, input_bytes, output_bytes, wall_s, cpu_s, device_s=None):
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # as HostCpu's
            return np.where(input_bytes > 0, -output_bytes / input_bytes, 0.0)

    @property
    def loss_rates(self) -> tuple[float, float]:
        return math.inf, 1e9  # GB sent; CPU time costs nothing

    @property
    def unit(self) -> str:
        return "-wire B/guest B"


OBJECTIVES: dict[str, type[Objective]] = {
    "throughput": Throughput,
    "cpu": HostCpu,
    "wire": WireBytes,
}


def _positive(x: object) -> bool:
    """Whether ``x`` is a real number above 0 (infinity included, NaN and bools not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and x > 0


def make_objective(name: str = "throughput", **params: Any) -> Objective:
    """An objective by name; ``link`` may be a string such as ``10Gbit``."""
    if name not in OBJECTIVES:
        raise ObjectiveError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    if "link" in params:
        params["link"] = parse_rate(params["link"])
    try:
        return OBJECTIVES[name](**params)
    except TypeError as exc:
        raise ObjectiveError(f"bad parameters for objective {name!r}: {exc}") from exc


def objective_from_config(config: dict[str, Any]) -> Objective:
    params = dict(config)
    return make_objective(params.pop("name", "throughput"), **params)
