"""The ``auto`` policy: predict every arm's outcome on this window, buy a probe only when
it can change the decision by more than it costs.

An arm's outcome on a window is predicted from:

- the window's size and zero pages (every arm sends a zero page as a one-byte marker);
- per compressing arm, its log ratio over the non-zero pages, modelled as a shared level
  plus a per-arm offset, ``L + d_a``, in a Kalman filter. Compressors' ratios move together
  (the content is what changes), so playing one arm informs all of them. The played arm's
  outcome is free evidence; a probe of a few sampled pages is bought evidence, with a learnt
  bias, shared and per arm (a few pages compress worse than a whole batch, by how much
  depends on the codec and on what the arm's plays saw:
  :class:`~migcodec.selector.policies.kalman.RatioFilter`). The level drifts between
  windows, more when the cheap features show a change of content, and by as far as
  played windows showed it jumping;
- per delta arm, the payload its format would write for the sampled pages' changed words
  (:meth:`~migcodec.codecs.delta.DeltaCodec.estimate_sizes`) with a learnt bias, plus its
  fall-back's payload for pages the destination does not hold. The delta arms' shared
  level is filtered over the windows of about the same size: a sample moves it by what
  samples have been worth (how far they missed what played windows sent), and played
  windows set it. A delta arm's loss is its expectation over that level's error, as
  large as played windows showed it (:meth:`Auto._spread_delta`): records that may come
  out larger than estimated may fill the link;
- per arm, CPU time from the calibrated cost model (:mod:`migcodec.selector.costmodel`):
  a compressor's at its predicted ratio, a delta arm's by the changed words and runs of
  changed bytes of the sample's held pages, which its encode time follows;
  corrected by learnt factors: the host's, shared by all arms and learnt from the plays
  of every arm but the delta arms; one the delta arms share, learnt from theirs (how a
  program's writes meet delta formats, which no calibration sees); and one per arm (the
  delta arms' filtered jointly with the part they share, so that one arm's plays do not
  carry its error to another arm measured before: :meth:`Auto._learn_delta_cpu`).

The objective turns these into a predicted reward per arm and the best is played, or an
arm no window has measured yet where trying it is worth what it may lose (its cost on this
program's memory may be far from the calibration's: on recorded traces XBZRLE's against a
DSA record's stands anywhere from 0.8x to 2.3x the calibration's), on the window's first
few batches, the rest of the window played by the best arm (:meth:`Auto.split`). An arm's
own CPU factor grows less known with every second of stream that plays other arms
(``cost_drift``), and one back at its prior counts as not yet measured: a factor measured
on one slow window does not keep an arm off the rest of a long stream. The cheap
features are read only when they pay: the policy keeps a moving average, per guest byte, of
the loss that reading them avoided, and also reads them when no window of about this one's
size has been read (features are kept per size: programs alternate bursts with a few pages of
housekeeping, and each kind describes its own next windows), when a window sent more or less
than predicted (in both cases unless the read costs more than the whole window is predicted
to take), or when reading them costs at most ``upkeep`` of the time played on the
features of this size since they were read (so keeping estimates fresh costs a bounded share
of the migration). A probe of arm ``a`` is bought when its expected value (the loss it
avoids by revealing a better arm, over how far a probe of its pages can move ``a``'s
estimated ratio: the less the pages say over their noise, the less) exceeds its CPU
time, charged to the window: probes go to large windows whose best arms are close, and stop
once the estimates are sharp.

Under the throughput objective a window takes as long as the busier of the encoders and the
link, so the best arm for a window may leave one of them idle. A window is then shared with
an arm bound by the other (a compressor's batches beside raw or delta batches): each plays
the part of the window at which both are predicted equally busy, when that saves at least
``balance`` of the window's time (:meth:`Auto._balanced`), and while the encoders run about
as fast as calibrated (on a crowded host neither idle resource is free). No single codec can
do this, so on traces where neither resource dominates ``auto`` beats every fixed arm and
even the per-window oracle of single arms.

The policy is one class, :class:`Auto` (``policy.py``: its state, the predictions, the
choice and the update), with a part per concern mixed in from its own module, each on the
same instance and slots (one object: the decision and update read several dozen
attributes a window, and a part held as an object of its own would add a look-up to each):
``delta.py`` (the delta arms' records, level and CPU factors), ``reads.py`` (which windows
are read, what a read costs and is worth), ``probes.py`` (which probes to buy), ``sharing.py``
(trials and shared windows), ``pace.py`` (each arm's pace in a stream); ``common.py`` holds
the constants and the prediction record they share.
"""

from migcodec.selector.policies.auto.common import PROBE_VALUES
from migcodec.selector.policies.auto.policy import Auto

__all__ = ["PROBE_VALUES", "Auto"]
