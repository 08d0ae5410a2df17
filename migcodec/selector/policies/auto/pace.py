"""Each arm's pace: how much longer than its encoders' time a stream took for its windows
(learnt where the engine times frames going out).
"""

from __future__ import annotations

import math

from migcodec.selector.objectives import Outcome
from migcodec.selector.policies.auto.common import (
    _PACE_CLIP,
    _PACE_FIRST,
    _PACE_LINK_SLACK,
    _PACE_SHARED_LOG,
    _PACE_WINDOWS,
)


class StreamPace:
    """Paces learnt from the stream (mixed into ``Auto``)."""

    __slots__ = ()

    def learn_elapsed(self, arm: int, elapsed_s: float, outcome: Outcome) -> None:
        """Learn ``arm``'s pace from a window it played whole: ``elapsed_s``, the stream's
        time for the batches ``outcome`` counts (how long their frames took to go out, as
        the engine's sender saw them), over its encoders' time (by the objective's clock,
        over the workers), where the link does not account for it (only under the
        throughput objective). The arm's CPU time is then predicted times its pace: a moving
        average of the log of the median of its last :data:`_PACE_WINDOWS` such ratios (the
        less of two; its first window's taken at :data:`_PACE_FIRST`; each ratio between 1
        and :data:`_PACE_CLIP`, and 1 where the link accounts for the window), so that one
        window slowed by a pause of the host's moves nothing.

        The model counts the encoders' time and the link's, and a stream also waits for the
        work it does not see: what the frames cost the destination's receiver and decoder,
        which in the reference engine share the encoders' cores (a sequence guest's zstd
        windows took 0.93-1.26 times what their encoders and the link account for, a redis
        server's memory image's lz4 windows at 10 Gbit/s 1.5 times, where raw windows took
        their link's time), or a destination that decodes one codec slowly (in software,
        where the source has the accelerator). The link is paced by the engine and its time
        is known; the rest scales with the work each arm's frames make, so it is the CPU
        side a pace multiplies. An arm no window has paced yet goes at the least pace the
        stream has shown, up to :data:`_PACE_SHARED_MOST` (on a host where every arm waits
        for its cores, another arm is not thought faster only because it was not timed),
        and a delta arm at its fall-back's (on pages the destination does not hold it sends
        them through that arm); an arm counted untried again (``cost_drift``) forgets its
        pace, so that a destination busy for a while does not keep its arm off for good."""
        if not self._timed or arm < 0 or arm >= self.n_arms:
            return
        sent = outcome.output_bytes
        busy = outcome.busy_s(self._clock) * self._to_cpu
        if not (busy > 0.0 and elapsed_s > 0.0 and math.isfinite(elapsed_s)):
            return
        if elapsed_s <= sent * self._to_link * _PACE_LINK_SLACK:
            y = 0.0  # the link accounts for the window: it waited for nothing unseen
        else:  # no faster than its encoders: a window that seems to have gone out faster
            # went into the sockets' buffers (the first few megabytes of a stream do)
            y = math.log(elapsed_s / busy)
            y = _PACE_CLIP if y > _PACE_CLIP else 0.0 if y < 0.0 else y
        recent = self._pace_recent[arm]
        recent.append(y)
        if len(recent) > _PACE_WINDOWS:
            del recent[0]
        y = sorted(recent)[len(recent) // 2] if len(recent) > 2 else min(recent)
        seen = self._pace_seen[arm] = self._pace_seen[arm] + 1
        own = self._pace_log
        own[arm] += (_PACE_FIRST if seen == 1 else self.learn) * (y - own[arm])
        self._set_paces()

    def _set_paces(self) -> None:
        """Every arm's pace: its own where a window has paced it, else its fall-back's (a
        delta arm) or the least shown, up to :data:`_PACE_SHARED_MOST` (see
        :meth:`learn_elapsed`)."""
        own, seen, fallbacks = self._pace_log, self._pace_seen, self.fallbacks
        shown = [x for x, n in zip(own, seen, strict=True) if n]
        least = min(shown) if shown else 0.0
        least = _PACE_SHARED_LOG if least > _PACE_SHARED_LOG else least
        paces = []
        for arm, x in enumerate(own):
            if not seen[arm]:
                fallback = fallbacks[arm]
                x = own[fallback] if fallback >= 0 and seen[fallback] else least
            paces.append(math.exp(x))
        self._pace = paces
        self._paced = True

    def _forget_pace(self, arm: int) -> None:
        """``arm``'s pace back to what nothing has shown (see :meth:`learn_elapsed`)."""
        self._pace_log[arm], self._pace_seen[arm] = 0.0, 0
        self._pace_recent[arm].clear()
        if self._paced:
            self._set_paces()

    def _factors(self) -> list[float]:
        """Each arm's CPU factor past the host's, times its pace where the stream has shown
        one (:meth:`learn_elapsed`): the CPU time a window of it costs the stream."""
        if not self._paced:
            return self._arm_factor
        return [f * pace for f, pace in zip(self._arm_factor, self._pace, strict=True)]
