"""When the ``auto`` policy reads a window's features, and what a read costs and is worth."""

from __future__ import annotations

import math
from dataclasses import dataclass

from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies.auto.common import _DECISION_OUTLIER, _KEPT_READS, _argmin


def _about(pages: float, read_pages: float) -> bool:
    """Whether a window of ``pages`` pages is of about the size of one of ``read_pages``
    (within a factor of 4): the features of one describe the other (see
    ``Auto.wants_features``)."""
    return read_pages / 4 <= pages <= read_pages * 4


@dataclass(slots=True, eq=False)
class _Read:
    """Features read on a window, and the predicted time of the windows played on them
    since (see ``Auto.wants_features``)."""

    features: WindowFeatures
    #: what reading them cost, as priced (Auto._scan_cost: their scan's CPU seconds, a
    #: pause in it counted as at most a few times what a scan costs here)
    scan_s: float = 0.0
    since_s: float = 0.0
    #: the predicted loss per page of the last window played on these features
    per_page_s: float = 0.0
    #: the delta arms' level on windows of this size, and its variance (see
    #: Auto._delta_level_of): the window's as priced, then corrected by its plays
    level: float | None = None
    level_var: float = 0.0
    #: the log of what the delta arms' records came to over their prediction on windows
    #: of this size played on the features last read on another (a moving average, carried
    #: from one read of the size to the next; see Auto._learn_stale)
    stale_bias: float = 0.0


class FeatureReads:
    """Which windows are read, and the features kept per window size (mixed into ``Auto``)."""

    __slots__ = ()

    @property
    def _read(self) -> WindowFeatures | None:
        """The features the window is played on (the last read of about its size)."""
        entry = self._read_entry
        return None if entry is None else entry.features

    # -- which features to read -------------------------------------------------------

    def wants_features(self, pages: float) -> bool:
        self._pages = pages
        if self.n_arms < 2:
            return False  # one arm: no choice for features to change
        entry = self._similar(pages)
        if entry is None or self._stale_play:
            # no window of about this size read (the others say little of it), or the last
            # window sent other than predicted: read, unless reading costs more than the
            # window is predicted to take on the last features read. Such a read loses on
            # its window whatever it reveals, and what it tells of the next windows of its
            # size is worth as little to each. On a recorded key-value cache, windows of 1
            # to 23 pages between bursts were read at each change of size, each read
            # costing more than its window took
            return not self._read_costs_more(entry, pages)
        self._read_entry = entry
        cost = self._read_s(entry.scan_s)
        if cost <= self.upkeep * entry.since_s and self._feature_value > 0.0:
            # fresh estimates for a bounded share of the time, while reading has changed a
            # choice: where no read ever did (one arm best on every window), such rereads
            # bought nothing, and a cost model calibrated with dearer memory scans put
            # `auto` 0.5 % behind DSA records on a recorded database at 10 Gbit/s. A window
            # sent other than predicted is still read (_stale_play), and a read that
            # changes the choice starts these again
            return True
        if cost < self.negligible * entry.per_page_s * pages:
            return True  # next to nothing against the window: any better choice pays
        expected = self._feature_value * pages * self.page_size
        return expected > self.value * cost

    def _read_costs_more(self, entry: _Read | None, pages: float) -> bool:
        """Whether reading a window of ``pages`` pages costs more than the window is
        predicted to take on ``entry`` (else on the newest read kept), which it is then
        played on; False while nothing was read. The read is priced as ``entry``'s, its
        scan in proportion to the pages it samples where the window has fewer pages than
        ``entry`` sampled (a lower bound: the scan has a fixed part), so that a read is
        skipped only where even that costs more than the window."""
        if entry is None:
            if not self._reads:
                return False
            entry = self._reads[0]
        read = entry.features
        scan = entry.scan_s
        if pages < read.sample:
            scan *= (pages if pages > 1.0 else 1.0) / read.sample
        if self._read_s(scan) <= min(self._predict(read, pages)[3]):
            return False
        self._read_entry = entry
        return True

    def _scan_cost(self, fresh: WindowFeatures) -> float:
        """What reading ``fresh`` cost, as later reads of its size are priced: its scan's
        CPU seconds, but where the caller gave the machine's calibrated cost of a scan
        (:attr:`features_prior`), at most :data:`_DECISION_OUTLIER` times that cost as
        this host has lately run it (a moving ratio, itself moved by each scan so
        clipped). A pause the scan did not cause (a collection of the interpreter's
        garbage) counted whole, and priced every later read of its size out: on a phased
        workload, the windows of a phase whose delta records were a fiftieth of what the
        compressor played sent, read on none of them. A replay's scans (a table's, smooth
        where calibrated) are priced as measured."""
        spent = fresh.cheap_s
        prior = self.features_prior
        if prior is None:
            return spent
        calibrated = prior[0] + prior[1] * fresh.sample
        if calibrated <= 0.0:
            return spent
        ratio = self._scan_ratio
        seen = spent / calibrated
        most = _DECISION_OUTLIER * ratio
        seen = seen if seen < most else most
        self._scan_ratio = ratio + self.learn * (seen - ratio)
        return seen * calibrated

    def _read_s(self, scan_s: float) -> float:
        """What reading features whose scan takes ``scan_s`` CPU seconds costs a window:
        the scan and the decision of which probes to buy on them, in the objective's units,
        as the window's predicted loss is: CPU seconds over the objective's CPU rate (the
        throughput objective's workers; nothing under the wire objective, whose loss CPU
        time does not enter: priced as seconds there, reads looked a third of a window's
        loss, and a recorded database's windows after its first few were played on stale
        features, on zstd where XBZRLE sent a third less). A host whose encoders' wall
        time is several times their CPU time stretches the feeding thread's reads as much
        (measured on a real image's first pass: reads priced unstretched fell under
        ``negligible`` on 47 of 64 windows, and cost a migration 5 % of its time). Where
        the reads hold up the stream (:attr:`reads_stall_encoders`, the engine's chooser)
        a read's time counts whole: on one pass of a sequence guest (128 MiB, 1 Gbit/s,
        zstd played throughout) a busy loop of 2 ms before each window's read lengthened
        the migration by 0.8 of it, and rereads priced over the workers, each under 1 % of
        its window, took `auto` 5 % behind zstd played alone (0.7 % priced whole)."""
        rate = 1.0 if self.reads_stall_encoders and self._timed else self._read_rate
        return (scan_s + self._decision_s) * self._stretch / rate

    def _similar(self, pages: float) -> _Read | None:
        """The features last read on a window of about ``pages`` pages (within a factor
        of 4), if any are kept."""
        for entry in self._reads:
            if _about(pages, entry.features.pages):
                return entry
        return None

    def _value_of_reading(self, fresh: WindowFeatures) -> list[float]:
        """Predict the window ``fresh`` describes, and learn what reading its features
        changed against the last ones read: every arm's predicted output bytes, CPU seconds
        and loss (as :meth:`_predict`). The stale prediction comes first, so that what
        :meth:`_payloads` keeps afterwards is this window's, which the update reuses."""
        entry = self._similar(fresh.pages)
        stale_arm = None
        if entry is not None:
            stale_arm = _argmin(self._predict(entry.features, fresh.pages, entry.stale_bias)[3])
        predicted = self._predict(fresh)
        if stale_arm is not None:
            loss = predicted[3]
            avoided = (loss[stale_arm] - min(loss)) / max(fresh.pages * self.page_size, 1.0)
            old = self._feature_value
            step = self.learn
            self._feature_value = avoided if math.isinf(old) else old + step * (avoided - old)
        carried = 0.0 if entry is None else entry.stale_bias  # a lesson of the size's
        self._read_entry = entry = _Read(fresh.cheap(), self._scan_cost(fresh))
        entry.stale_bias = carried
        sample = self._delta_sample(fresh.delta_bytes)
        if sample is not None:
            entry.level, entry.level_var, sample.entry = sample.level, sample.var, entry
        kept = [e for e in self._reads if not _about(fresh.pages, e.features.pages)]
        self._reads = [self._read_entry, *kept[: _KEPT_READS - 1]]
        self._stale_play = False
        return predicted

    # -- which probes to buy ---------------------------------------------------------
