"""Playing a window on two arms: trying an arm not yet measured on a window's first
batches, and sharing a window between an arm bound by the encoders and one bound by the link.
"""

from __future__ import annotations

import math

from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies.auto.common import (
    _CHEAPEST,
    _CPU_NODES,
    _CPU_WEIGHTS,
    _CROWDED_HOST,
    _LEVEL_SPREAD_MIN_VAR,
)


class WindowSharing:
    """Trials and shared windows (mixed into ``Auto``)."""

    __slots__ = ()

    def _trial(
        self,
        f: WindowFeatures,
        arm: int,
        best: float,
        untried: list[int],
        out: list[float],
        cpu: list[float],
    ) -> int:
        """The first arm of ``untried`` worth trying on this window instead of ``arm``, the
        arm of least predicted loss ``best`` (see :meth:`_pick`), or ``arm``."""
        guest = max(f.pages, 1.0) * self.page_size
        horizon = max(self._played_bytes / guest, 1.0)
        held = self._mostly_held(f)
        # a trial plays the arm on a part of the window (split): it loses that part's share
        part = self._trial_pages / max(f.pages, 1.0)
        part = part if part < 1.0 else 1.0
        for a in untried:
            if a == arm or (self._delta_flags[a] and not held):
                continue
            cheapest = self._scalar_loss(guest, out[a], cpu[a] * self._cheapest_scale[a])
            if cheapest >= best:
                continue  # out of reach at its cheapest node: nothing to save
            sd = self._trial_sd[a]
            trial = [
                cheapest
                if z == _CHEAPEST
                else self._scalar_loss(guest, out[a], cpu[a] * math.exp(sd * z))
                for z in _CPU_NODES
            ]
            weighted = list(zip(_CPU_WEIGHTS, trial, strict=True))
            saves = sum(w * (best - t) for w, t in weighted if t < best)
            costs = sum(w * t for w, t in weighted) - best
            if saves > 0 and saves * horizon > self.value * max(costs, 0.0) * part:
                return a
        return arm

    def _balanced(
        self, f: WindowFeatures, best: int, loss: list[float], out: list[float], cpu: list[float]
    ) -> int:
        """The arm to play first on the window, ``best`` (the arm of least predicted loss)
        or a partner that shares the window with it (:meth:`split`).

        Under the throughput objective a window takes as long as the busier of the
        encoders and the link: an arm that keeps the encoders busy leaves the link idle,
        and one that fills the link leaves encoders idle. Played on parts of one window,
        two such arms both work, and the window takes less time than either alone takes
        on all of it (a compressor's batches beside raw or delta batches, which send more
        and cost less; ``docs/results/selector.md`` shows what it gains on recorded
        traces). The partner's share is
        the one at which the encoders and the link are predicted equally busy, in whole
        batches; a split is played when it saves at least ``balance`` of the window's
        predicted time, as a margin against the predictions' error (a split whose arms
        are both really bound by the same resource takes the weighted mean of their times).
        Where a delta arm's records are uncertain (its level's spread, :meth:`_spread_delta`),
        the split found at the estimates must save that share of the best arm's time in
        expectation over the spread as well: the share balanced at the estimate
        leaves the link or the encoders idle at the other levels, and a window that one
        arm alone would have played through the miss then takes the slower arm's time on
        its part. On a recorded key-value cache at 10 Gbit/s with ``balance`` at 0.02, raw
        pages beside XBZRLE's records, on windows the estimates put at least 2 % faster
        so, took up to 28 % longer than XBZRLE alone where the records came out larger
        than the sample showed; over the spread, those windows are not shared.
        Windows are shared only while the encoders run about as fast as calibrated
        (:data:`_CROWDED_HOST`): the model counts the encoders' time and the link's, and
        on a host whose encoders wait for cores the rest is other threads' time: in the
        reference engine, whose loopback's sender, receiver and decoder share the encoders'
        cores, shared windows slowed migrations both ways (``docs/results/migration.md``).
        The arm learnt from longest ago plays the part the update learns from, so both
        arms' estimates stay current."""
        self._expected, self._expected_out = loss[best], out[best]
        pages, step = self._window_pages, self.batch_pages
        if not self._timed or self._cpu_scales is not None or pages < 2 * step:
            return best
        if self._shared_factor > _CROWDED_HOST:
            return best  # the model's idle encoders or link are other threads' time
        to_cpu, to_link = self._to_cpu, self._to_link
        busy_best, sending_best = cpu[best] * to_cpu, out[best] * to_link
        cpu_bound = busy_best > sending_best
        # against the best arm's time at its estimate, as the shared window's is priced
        least = (busy_best if cpu_bound else sending_best) * (1.0 - self.balance)
        # a partner bound by the other resource uses more of the one the best arm leaves
        # idle than the best arm does (else its own loss would be less): a shared window
        # takes at least that resource's time alone
        if (sending_best if cpu_bound else busy_best) >= least:
            return best
        partner, partner_pages = best, 0.0
        for arm in range(self.n_arms):  # indexed: enumerate(zip()) costs twice as much
            busy, sending = cpu[arm] * to_cpu, out[arm] * to_link
            if (busy > sending) == cpu_bound:
                continue  # bound by what binds the best arm (the best arm itself, too)
            # the share of pages on the partner at which encoders and link are equally busy
            share = (sending_best - busy_best) / ((busy - busy_best) - (sending - sending_best))
            part = round(share * pages / step) * step
            if not 0 < part < pages:
                continue
            share = part / pages
            busy = busy_best + share * (busy - busy_best)
            sending = sending_best + share * (sending - sending_best)
            mixed = busy if busy > sending else sending
            if mixed < least:
                least, partner, partner_pages = mixed, arm, float(part)
        if partner == best:
            return best
        flags = self._delta_flags
        spreads = self._split_spreads(f, pages) if flags[best] or flags[partner] else None
        if spreads is not None:  # the split found at the estimates, over the spread
            # against the best arm's loss, which is already its expectation over the spread
            # when it is a delta arm (_spread_delta) and its time at the estimate otherwise
            least = self._mixed(spreads, best, partner, partner_pages / pages, out, cpu)
            if least >= loss[best] * (1.0 - self.balance):
                return best
        self._expected = least
        learnt = self._learnt
        if learnt[partner] <= learnt[best]:
            self._split = (best, partner_pages)
            self._expected_out = out[partner]
            return partner
        self._split = (partner, pages - partner_pages)
        return best

    def _split_spreads(
        self, f: WindowFeatures, pages: float
    ) -> dict[int, tuple[float, float, list[tuple[float, float]]]] | None:
        """Per delta arm with records, :meth:`_arm_spread` on a window of ``pages`` pages
        played on ``f``, while the delta arms' level is uncertain enough to spread; else
        ``None``."""
        if not self._delta_arms:
            return None
        self._payloads(f)  # the window's prediction, as the choice made it
        kept = self._prediction
        var = kept.level_var * self._level_calib
        if var <= _LEVEL_SPREAD_MIN_VAR:
            return None
        nz = (pages if pages > 1.0 else 1.0) * (1.0 - kept.zero_share)
        spreads = {}
        for i in self._delta_arms:
            moved = self._arm_spread(kept, var, nz, i)
            if moved is not None:
                spreads[i] = moved
        return spreads or None

    def _mixed(
        self,
        spreads: dict[int, tuple[float, float, list[tuple[float, float]]]],
        best: int,
        partner: int,
        share: float,
        out: list[float],
        cpu: list[float],
    ) -> float:
        """The expected time of a window whose ``share`` of pages ``partner`` plays and
        the rest ``best``, over the delta arms' level (``spreads``, :meth:`_split_spreads`):
        at each of its three points, both arms' records at that point of their own spread
        (the same level, but where one arm's spread is narrowed at raw pages, as
        :meth:`_spread_delta` prices it alone, a point nearer its estimate); an arm without
        records at its estimate."""
        to_cpu, to_link = self._to_cpu, self._to_link
        moving = []
        for arm in (best, partner):
            records, changes, nodes = spreads.get(arm, (0.0, 0.0, None))
            moving.append((cpu[arm], changes, out[arm], records, nodes))
        total = 0.0
        for k, weight in enumerate(_CPU_WEIGHTS):
            busy = sending = 0.0
            for part, (c, changes, o, records, nodes) in zip(
                (1.0 - share, share), moving, strict=True
            ):
                scale = 0.0 if nodes is None else nodes[k][1]
                busy += part * (c + changes * scale) * to_cpu
                sending += part * (o + records * scale) * to_link
            total += weight * (busy if busy > sending else sending)
        return total
