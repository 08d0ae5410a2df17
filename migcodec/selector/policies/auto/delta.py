"""The delta arms' part of the ``auto`` policy: pricing their records and the fall-back
part of a window, the spread of their shared level, and learning both from played windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies.auto.common import (
    _CPU_NODES,
    _CPU_PLAY_VAR,
    _CPU_WEIGHTS,
    _DELTA_NOISE_CLIP,
    _DELTA_POOL_STEP,
    _LEVEL_CALIB_STEP,
    _PLAY_VAR,
    _SIZE_APART_VAR,
    _grid_step,
    _Prediction,
)
from migcodec.selector.policies.auto.reads import _Read
from migcodec.selector.policies.kalman import kalman_update


def _fallback_part(parts: tuple[float, float, float, float] | None) -> float:
    """The model CPU seconds per non-zero page of a delta arm's fall-back part (its pages
    not held, at the fall-back's cost) from its fall-back parts (``Auto._price_delta``)."""
    return 0.0 if parts is None else parts[3]


@dataclass(slots=True, eq=False)
class _DeltaSample:
    """One window's sample of the delta arms (``raw``, its estimates array), the level it
    showed and the held pages it read, the level and variance the filter priced the window
    at (``Auto._delta_level_of``), and the features kept for its size once it was read
    (whose level its plays correct)."""

    raw: np.ndarray
    sampled: float
    pages: float
    level: float
    var: float
    entry: _Read | None = None
    #: the level of the windows of its size before it, and that level's variance before
    #: the drift between windows (None: the first of its size, or its jump already learnt)
    prior: tuple[float, float] | None = None
    #: per arm, the model's CPU seconds per held page of the changes it shows, and the
    #: part of them that moves with the level (made once: see Auto._change_costs)
    changes: list[float] | None = None
    moving: list[float] | None = None


class DeltaArms:
    """The delta arms' predictions and what their plays teach (mixed into ``Auto``)."""

    __slots__ = ()

    def _price_delta(self, i: int, kept: _Prediction) -> None:
        """Delta arm ``i``'s entries of ``kept``: its payload, log ratio, model CPU per page
        and fall-back parts, from its estimate, its bias and its fall-back's entries."""
        page_size = self.page_size
        payload, estimates, held = kept.payload, kept.estimates, kept.held
        bias = kept.biases[i] = self.delta_bias[i]
        # pages the destination does not hold go through the arm's fall-back, as its arm
        # would send them (raw, when no arm is configured like it)
        fallback = self.fallbacks[i]
        fb = payload[fallback] if fallback >= 0 else float(page_size)
        if estimates is None:  # nothing held: every page through the fall-back
            each, share, records = fb, 0.0, 0.0
            kept.records[i] = 0.0
        else:
            est = estimates[i]  # an arm without an estimate sends pages raw
            if not math.isfinite(est):
                est = page_size
            est *= math.exp(bias)
            if est > page_size:
                est = page_size
            kept.records[i] = held * est
            each = held * est + (1.0 - held) * fb
            if each < 1.0:
                each = 1.0
            share, records = held, math.log(page_size / (1.0 if est < 1.0 else est))
        payload[i] = each
        kept.lr[i] = math.log(page_size / each)
        rows = self._cost_rows
        parts = None
        if fallback >= 0:
            cost = rows[fallback][_grid_step(kept.lr[fallback])]
            if share < 1.0:  # a batch with a page not held calls the fall-back too
                cost += self._fallback_call_cost(fallback, share, kept.zero_share)
            parts = (share, fb, cost, (1.0 - share) * cost)
        kept.fallback_parts[i] = parts
        own = rows[i][_grid_step(records)] + kept.changes[i]
        kept.per_page[i] = self._delta_page_cost(own, parts)

    def _fallback_priced(
        self, cpu: list[float], pages: float, factors: list[float] | None = None
    ) -> list[int]:
        """Move each delta arm's fall-back part of ``cpu`` (its pages not held, ``pages``
        non-zero pages times the host's factor, which the fall-back codec encodes) from its
        own factor to the fall-back arm's, and return the arms moved. At its own factor, a
        delta arm on a first pass was priced below its fall-back arm whenever that arm had
        measured slower than its calibration: lz4 at 1.1x lost the first pass of a redis
        image to XBZRLE running lz4, whose factor, measured on those windows, then said
        nothing about its records."""
        moved = []
        parts, fallbacks = self._prediction.fallback_parts, self.fallbacks
        factors = self._arm_factor if factors is None else factors
        for i in self._delta_arms:
            part = _fallback_part(parts[i])
            if part > 0.0:
                cpu[i] += part * pages * (factors[fallbacks[i]] - factors[i])
                moved.append(i)
        return moved

    def _fallback_call_cost(self, fallback: int, held: float, zero_share: float) -> float:
        """The fall-back arm's per-call cost, per page it encodes for a delta arm: a batch
        calls it once for all its pages the destination does not hold, which with ``held``
        of ``k`` non-zero pages held is a batch in ``1 - held**k``, for the ``(1 - held) k``
        pages it encodes there. Without it, a delta arm on a window held nowhere (a first
        pass) was priced as its fall-back's pages plus its own per-call cost, which is
        below the fall-back arm's own: it won the first pass of a 256 MiB redis image
        from lz4, which it then ran with its own bookkeeping besides."""
        k = self.batch_pages * (1.0 - zero_share)
        k = 1.0 if k < 1.0 else k
        batches = 1.0 - held**k  # the share of batches that call the fall-back
        return self._fixed_rows[fallback][0] * batches / ((1.0 - held) * k)

    def _change_costs(self, f: WindowFeatures) -> tuple[list[float], list[float]]:
        """Per arm, the model's CPU seconds per held page for the changes ``f``'s sample
        shows: its changed words (the context's share of them) and runs of changed bytes,
        at the arm's costs per word and per run (a delta arm's; 0 for the others), and the
        part of that which moves with the delta arms' level. Made once per sample (called
        after :meth:`_delta_estimates` of ``f``): a window played on kept features prices
        its delta arms again whenever a play moves the filter or a bias.

        Where the level filter puts the window's payload (the words its records encode)
        away from what its sample shows, the words move with it, and the runs move by the
        share that they move with the words from page to page: the slope of a page's runs
        on its words (pooled over the windows sampled, as the arms' offsets are, with
        :data:`_DELTA_POOL_STEP`), times the sample's words over its runs, from 0 to 1.
        On a recorded key-value cache's windows, where some values are rewritten whole (a
        few runs of many words) and other pages have a word changed here and there, that
        share is about a tenth: a window whose sample held few of the rewritten pages
        showed its runs about right and its words at a third, and its runs scaled with its
        words priced XBZRLE, whose time follows its runs, up to a quarter above what it
        took. Where pages are written alike (a database's, a JavaScript heap's) the share
        is near 1, as it was. Against the windows' true words and runs, on the recorded
        programs' traces, the runs so estimated miss by 0.11 (root mean square of the log)
        where runs scaled with the words missed by 0.18."""
        sample = None if f.delta_bytes is None else self._delta_sample(f.delta_bytes)
        if sample is None:  # nothing held: no records, nothing they encode
            return self._no_changes, self._no_changes
        if sample.changes is None:
            words, runs = float(f.context[3]) * (self.page_size // 8), f.change_runs
            moments = self._runs_moments  # pooled by _delta_estimates
            share = 1.0  # no spread of words seen yet: the runs move with them
            if moments[0] > 0.0 and runs > 0.0:
                share = moments[1] / moments[0] * words / runs
                share = 0.0 if share < 0.0 else 1.0 if share > 1.0 else share
            # the sampled pages show the words as they show the payload, with the same
            # error: the level the filter puts the window at moves them
            scale = math.exp(sample.level - sample.sampled)
            words *= scale
            moved = runs * share * scale  # the runs' part that moves with the level
            runs += moved - runs * share
            sample.changes = [
                per_word * words + per_run * runs for per_word, per_run in self._change_rows
            ]
            sample.moving = [
                per_word * words + per_run * moved for per_word, per_run in self._change_rows
            ]
        return sample.changes, sample.moving

    @staticmethod
    def _delta_page_cost(own: float, fallback: tuple[float, float, float, float] | None) -> float:
        """A delta arm's model CPU seconds per non-zero page: ``own``, what its records cost
        (its curve at their log ratio and the changes they encode: see
        :mod:`migcodec.selector.costmodel`), for the share
        of pages the destination holds, and its fall-back arm's cost per page for the
        others. ``fallback``: that share, the fall-back's payload and its cost per page
        (:meth:`_payloads` keeps them per window); without a fall-back arm, its own curve
        prices every page."""
        if fallback is None:
            return own
        return fallback[0] * own + fallback[3]

    def _sent_page_cost(self, arm: int, f: WindowFeatures, each: float) -> float:
        """The model's CPU seconds per non-zero page of a window ``arm`` sent at ``each``
        payload bytes per page (clipped to 1 byte and a whole page). For a delta arm, what
        its fall-back would have written for the pages the destination does not hold (the
        filter's estimate, as the choice priced it) is taken out, and the rest are its
        records (:meth:`_delta_page_cost`)."""
        page_size = self.page_size
        fallback = None
        changes = 0.0
        if self._delta_flags[arm]:
            self._payloads(f)  # the window's fall-back parts, as the choice computed them
            kept = self._prediction
            fallback = kept.fallback_parts[arm]
            changes = kept.changes[arm]  # what its records encoded, as the sample shows
            if fallback is not None:
                held, fb, _, _ = fallback
                each = (each - (1.0 - held) * fb) / (1e-9 if held < 1e-9 else held)
        # clipped, and the grid's look-up, in conditional expressions: min and max calls
        # cost several times as much, once per window
        each = 1.0 if each < 1.0 else page_size if page_size < each else each
        own = self._cost_rows[arm][_grid_step(math.log(page_size / each))] + changes
        return own if fallback is None else self._delta_page_cost(own, fallback)

    def _stale_moved(
        self,
        kept: _Prediction,
        stale: float,
        guest: float,
        nz: float,
        out: list[float],
        cpu: list[float],
        loss: list[float],
    ) -> None:
        """Each delta arm's records in ``out`` (and the CPU seconds of the changes they
        encode that move with them, as :meth:`_spread_delta` moves them) scaled by
        ``exp(stale)``, and its loss in ``loss`` anew."""
        scale = math.exp(stale) - 1.0
        for i in self._delta_arms:
            records = kept.records[i] * nz
            if records <= 0.0:
                continue
            out[i] += records * scale
            cpu[i] += self._moving_cpu(kept, i, nz) * scale
            loss[i] = self._scalar_loss(guest, out[i], cpu[i])

    def _moving_cpu(self, kept: _Prediction, i: int, nz: float) -> float:
        """Delta arm ``i``'s CPU seconds, on a window of ``nz`` non-zero pages priced as
        ``kept``, of the changes its records encode that move with the delta arms' level
        (:meth:`_change_costs`): what a level other than the estimate moves its time by."""
        factor = self._arm_factor[i] * self._pace[i]  # a pace is 1 until a window shows one
        return kept.moving[i] * kept.held * nz * factor * self._shared_factor

    def _spread_delta(
        self,
        kept: _Prediction,
        var: float,
        guest: float,
        nz: float,
        out: list[float],
        cpu: list[float],
        loss: list[float],
    ) -> None:
        """Each delta arm's loss in ``loss`` as its expectation over the delta arms'
        level, whose variance is ``var``, at the same expected records' bytes (a spread
        about the estimate, three points).

        A window takes as long as the busier of the encoders and the link: the loss is
        convex in the records' size, and its value at the estimate is the least it can
        expect. Two delta arms whose records differ in size and cost split on which
        binds: a smaller record wins where the link binds, a cheaper one where the
        encoders do, and a window predicted just on the encoders' side of that line is
        often on the link's. A recorded key-value cache's window sent 1.9x the records its
        sample showed, four standard deviations out by the level's variance, and played
        DSA records where XBZRLE's were 15 % faster. So the variance is the
        filter's times the mean squared error of played windows in its units
        (:meth:`_learn_delta_level`): about 1 where pages are written alike, 5-9 on
        key-value caches, whose values are rewritten whole in some pages and a word at a
        time in others. The records' CPU time moves with the changes they encode, as far
        as those move with the level (:meth:`_change_costs`); the cost per record of the
        arm's curve is held. A held page's record is at most a
        page (a larger one goes raw): where the spread's highest level would pass that,
        the arm's spread is narrowed until it does not, at the same mean."""
        fast = self._fast and self._cpu_scales is None
        for i in self._delta_arms:
            moved = self._arm_spread(kept, var, nz, i)
            if moved is None:
                continue
            records, changes, spread = moved
            if fast:  # _point_loss, inline
                to_cpu, to_link = self._to_cpu, self._to_link
                total = 0.0
                for w, s in spread:
                    busy = (cpu[i] + changes * s) * to_cpu
                    sending = (out[i] + records * s) * to_link
                    total += w * (busy if busy > sending else sending)
            else:
                sent = np.array([out[i] + records * s for _, s in spread])
                busy = np.array([cpu[i] + changes * s for _, s in spread])
                total = float(np.dot(_CPU_WEIGHTS, self._loss(guest, sent, busy)))
            loss[i] = total

    def _arm_spread(
        self, kept: _Prediction, var: float, nz: float, i: int
    ) -> tuple[float, float, list[tuple[float, float]]] | None:
        """Delta arm ``i``'s records' bytes and the CPU seconds of the changes they encode
        that move with the level, on a window of ``nz`` non-zero pages priced as ``kept``,
        and the weights and scales (less 1) of the level's spread of variance ``var`` for
        it (narrowed where its highest level would pass raw held pages:
        :meth:`_spread_delta`); ``None`` for an arm without records."""
        records = kept.records[i] * nz
        if records <= 0.0:
            return None
        kept_nodes = self._spread_nodes
        if kept_nodes[0] == var:  # windows played on one read's features share theirs
            nodes = kept_nodes[1]
        else:
            nodes = self._spread_nodes_of(math.sqrt(var))
            self._spread_nodes = (var, nodes)
        changes = self._moving_cpu(kept, i, nz)
        room = kept.held * self.page_size * nz  # the held pages' bytes, sent raw
        if records * (1.0 + nodes[-1][1]) > room:  # at the highest level (+sqrt(3))
            most = math.log(room / records)  # <= 1.5, the most any spread reaches
            nodes = self._spread_nodes_of(math.sqrt(3.0) - math.sqrt(3.0 - 2.0 * most))
        return records, changes, nodes

    @staticmethod
    def _spread_nodes_of(sd: float) -> list[tuple[float, float]]:
        """The weights and scales (less 1) of a log-normal spread of standard deviation
        ``sd`` of the log, at three points, whose scales average 1."""
        mean = -0.5 * sd * sd
        return [
            (w, math.exp(mean + sd * z) - 1.0)
            for w, z in zip(_CPU_WEIGHTS, _CPU_NODES, strict=True)
        ]

    def _learn_delta_cpu(self, arm: int, y: float, weight: float) -> None:
        """Learn delta arm ``arm``'s CPU factor past the host's from ``y``, the log of its
        window's measured time over the model's less the host's factor, of a window of
        ``weight`` (see :meth:`_learn`), and set every delta arm's factor from it.

        The delta arms' factors past the host's are one Gaussian: the part they share and
        each arm's own (priors :data:`_CPU_DELTA_VAR`, :data:`_CPU_ARM_VAR`), with their
        covariance, updated by a Kalman filter. An arm played often teaches its own factor
        and, through the shared part, what an arm not played since should expect; an arm
        measured before keeps what its own plays showed: they pinned the sum of its part
        and the shared one, and the covariance remembers it. Learnt apart, as the
        compressors' are (a split of each error in proportion to the two variances, each
        a moving average), every play of one arm moved the other by as much as the shared
        part took, play after play: in a measured table of a key-value cache, where DSA
        records took 1.2-1.5x their model and XBZRLE 0.95x, thirty DSA windows moved
        XBZRLE's factor from 1.0 to 1.2, beside DSA's 1.3, and XBZRLE, the best fixed arm
        there, was played on few windows. The played arm's own part may move between
        plays (a variance of ``learn`` squared times :data:`_CPU_PLAY_VAR` over
        1 - ``learn``, each), so that a steadily played arm's factor moves by ``learn`` of
        each error, as a moving average's would; the shared part does not, or it would
        carry one arm's drift to the arms not played. An arm not played grows less known
        with the stream's time instead (:meth:`_retry_stale`). One call of the filters'
        update (:func:`~migcodec.selector.policies.kalman.kalman_update`) on a 3 by 4
        state for two delta arms."""
        state, size = self._delta_state, self._delta_state.shape[0]
        j = self._delta_pos[arm]
        state[j, j] += self._delta_drift
        # the played arm's factor is the shared part plus its own: entries 0 and j
        kalman_update(state, j, y, _CPU_PLAY_VAR / weight)
        # each delta arm's factor, as _pick prices it (and its trial's, while untried)
        family, untried = state.item(0, size), self._untried
        for p, a in enumerate(self._delta_arms, 1):
            own = self.cpu_arm[a] = state.item(p, size)
            self._cpu_arm_var[a] = state.item(p, p)
            self._arm_factor[a] = math.exp(family + own)
            if a in untried:
                self._trial_prior(a)

    def _delta_estimates(self, f: WindowFeatures) -> list[float] | None:
        """The delta arms' estimates of ``f`` (payload bytes per held page): the window's
        level (the mean of their logs), and each arm's offset from it pooled over the
        windows read (a moving average, :data:`_DELTA_POOL_STEP`). Every arm's estimate
        comes from the same few sampled pages, so their level moves with the sample, but
        their offsets, how one format meets a program's writes against another, move
        slowly: taken from one sample each, they tipped close calls between delta arms
        window by window (a recorded database's trace: XBZRLE's estimate off by half on
        single windows, where the two formats' costs lay within a quarter of each other).
        The sample's spread of changed words per page, and how its runs vary with them, are
        pooled alike, weighed by the held pages sampled (see :meth:`_change_costs`)."""
        raw = f.delta_bytes
        if raw is None:
            return None
        for seen, estimates in self._pooled:  # this window's, or the last read's: pooled once
            if seen is raw:
                return estimates
        pages = self._held_sampled(f)
        moments, step = self._runs_moments, _DELTA_POOL_STEP
        moments[0] += step * (pages * f.words_var - moments[0])
        moments[1] += step * (pages * f.words_runs_cov - moments[1])
        estimates = raw.tolist()
        arms = [a for a in self._delta_arms if math.isfinite(estimates[a]) and estimates[a] > 0]
        if arms:
            step = _DELTA_POOL_STEP
            logs = [math.log(estimates[a]) for a in arms]
            sampled = sum(logs) / len(logs)
            level = self._delta_level_of(f, raw, sampled)
            offsets = self._delta_offsets
            for a, x in zip(arms, logs, strict=True):
                if len(arms) > 1:
                    old = offsets[a]
                    offsets[a] = x - sampled if old is None else old + step * (x - sampled - old)
                estimates[a] = math.exp(level + (offsets[a] if len(arms) > 1 else 0.0))
        # kept by the estimates' array, which every copy of one window's features shares
        # (cheap(), masked(), the copy kept as the last read), so a window counts once:
        # the last two, since the window read before this one is priced again beside it
        # (_value_of_reading)
        self._pooled = [(raw, estimates), self._pooled[0]]
        return estimates

    def _delta_level_of(self, f: WindowFeatures, raw: np.ndarray, sampled: float) -> float:
        """The delta arms' level on ``f``'s window (the log of a held page's payload): a
        Kalman filter's over the windows of about its size (kept with their features, see
        :meth:`wants_features`; windows of other sizes hold other writes), moved towards
        the level its sample shows (``sampled``) by how much that sample is worth. A
        sample of ``m`` held pages estimates the level with variance ``noise / m``, where
        ``noise``, learnt from played windows (:meth:`_learn_delta_level`), is large where
        pages differ in how many words a program changed in them: on a recorded VM
        guest's windows a few dozen sampled pages put XBZRLE's time anywhere from 0.6x to
        2x what it took, and taken as they were, chose it over LZ4 on the windows it lost.
        The prior says less of a window the further its size is from the one it was read
        on (:data:`_SIZE_APART_VAR`): a key-value cache's window of twice the pages of the
        last had records of three times the size per page, which its sample showed and a
        prior as strong as a same-sized window's pulled most of the way back. How far the
        level moves between windows beyond ``drift`` is learnt from played windows, as the
        compressors' is (:meth:`_learn_delta_level`, :meth:`_learn_level_jump`): a recorded
        key-value cache's held pages took a factor of up to 9 more or fewer changed bytes
        from one window to the next, which a drift fit for slowly changing content held
        back towards the windows before, pricing XBZRLE's encode time (bound by its runs
        of changed bytes) up to a third above what it took. The first window of a size
        has only its sample."""
        pages = self._held_sampled(f)
        pages = 1.0 if pages < 1.0 else pages
        noise = self._delta_noise / pages
        prior = self._similar(f.pages)
        before = None  # the level of the windows of its size before it, and its variance
        if prior is None or prior.level is None:
            level, var = sampled, noise
        else:
            read = prior.features.pages
            apart = math.log((f.pages if f.pages > 1.0 else 1.0) / (read if read > 1.0 else 1.0))
            apart = apart if apart > 0.0 else -apart
            before = (prior.level, prior.level_var + _SIZE_APART_VAR * apart)
            var = before[1] + self.drift**2 + self._delta_jump
            gain = var / (var + noise)
            level = prior.level + gain * (sampled - prior.level)
            var *= 1.0 - gain
        sample = _DeltaSample(raw, sampled, pages, level, var, prior=before)
        self._delta_samples = [sample, *self._delta_samples[:1]]
        return level

    @staticmethod
    def _held_sampled(f: WindowFeatures) -> float:
        """How many of the pages ``f`` sampled are non-zero and held by the destination:
        what a delta sample's estimates are averaged over."""
        return f.sample * (1.0 - float(f.context[1])) * f.held_frac

    def _delta_sample(self, raw: np.ndarray | None) -> _DeltaSample | None:
        """The sample of the window whose delta estimates are ``raw``, if it is one of the
        last two (a loop, not a generator: once a window, where making one costs more)."""
        for sample in self._delta_samples:
            if sample.raw is raw:
                return sample
        return None

    def _learn_delta_level(
        self, arm: int, f: WindowFeatures, each: float, missed: float, nz: float
    ) -> None:
        """Learn from delta arm ``arm``'s payload ``each`` per page on ``f``'s window,
        whose log over the arm's estimate for it is ``missed``: the gap to the arm's own estimate
        from the window's sample is one draw of the sample's noise, and the level it
        implies (through the arm's offset in ``estimate``) is the window's, which the
        features of its size keep (with a played window's variance). How far that level
        lies from the one the windows before it held, beyond their variance and the
        drift, is one draw of the level's jump between windows (learnt once per window
        sampled, clipped as the compressors' is)."""
        raw = f.delta_bytes
        sample = self._delta_sample(raw)
        if sample is None:  # a window sampled before the last two: its sample is gone
            return
        own = float(raw[arm])
        bias = self.delta_bias[arm]
        if math.isfinite(own) and own > 0:
            gap = (math.log(each / own) - bias) ** 2 * sample.pages
            cap = _DELTA_NOISE_CLIP * self._delta_noise
            gap = cap if gap > cap else gap
            self._delta_noise += self.learn * (gap - self._delta_noise)
        implied = missed - bias + sample.level
        # how far the level missed, in units of the variance the window was priced with:
        # unclipped, since the spread that uses it is there for the heavy tail
        if sample.var > 0.0:
            z2 = (implied - sample.level) ** 2 / sample.var
            self._level_calib += _LEVEL_CALIB_STEP * (z2 - self._level_calib)
        noise = self.probe_noise**2 / nz
        noise = noise if noise > _PLAY_VAR else _PLAY_VAR
        before = sample.prior
        if before is not None:  # how far the level moved since the windows before it
            sample.prior = None
            moved = implied - before[0]
            surprise = moved * moved - before[1] - noise - self.drift**2
            surprise = surprise if surprise > 0.0 else 0.0
            self._delta_jump = self._jump_step(self._delta_jump, surprise)
        entry = sample.entry
        if entry is None or entry.level is None:
            return
        gain = entry.level_var / (entry.level_var + noise)
        entry.level += gain * (implied - entry.level)
        entry.level_var *= 1.0 - gain

    def _learn_stale(self, arm: int, each: float) -> None:
        """Learn from delta arm ``arm``'s payload ``each`` per non-zero page on a window
        played on the features last read on another window of its size: what its
        records came to over their estimate moves the size's ``stale_bias`` (a moving
        average of the log, at ``learn``), which windows played on the size's features
        price every delta arm's records with (:meth:`_predict`).

        The compressors learn from every window played, through their filter; the delta
        arms' estimates come from a window's own sample, and a window played on older
        features taught them nothing. Where content alternates, the windows read and the
        windows played on what they read differ: a recorded JavaScript heap's windows
        played on the last read sent XBZRLE records 1.6 to 3.2 times their estimate, window
        after window, while those read came within about a fifth of theirs, and ``auto`` went on
        playing XBZRLE where zstd level 3 took half the time (1.5 % behind zstd level 3
        alone at 1 Gbit/s once reads cost less; 2.4 % ahead with this)."""
        played = self._played_on
        if played is None or played[0].features.held_frac <= 0.9:
            return  # a window mostly sent through the fall-back says little of the records
        entry, kept = played
        records = kept.records[arm]
        sent = each - (kept.payload[arm] - records)  # less what the fall-back was priced at
        if records > 0.0 and sent > 0.0:
            bias = entry.stale_bias
            entry.stale_bias = bias + self.learn * (math.log(sent / records) - bias)

    @staticmethod
    def _mostly_held(f: WindowFeatures) -> bool:
        """Whether the destination holds most of the pages ``f`` sampled (a delta arm's
        window is then mostly records)."""
        return f.delta_bytes is not None and f.held_frac >= 0.5
