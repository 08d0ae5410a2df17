"""What a migration run measured, one row: throughput, the largest dirty rate that still
converges, total time, downtime, extra host CPU and compression ratio."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from migcodec.codecs import CodecPath


@dataclass
class IterationRecord:
    """One pass over the dirty pages, kept so a run can be drawn (``--plot``) and studied
    (``--json``) after the fact: why it converged, or where the dirty set stopped shrinking.

    Times are seconds since the migration started. ``wire_bytes`` counts frames written
    during the pass; ``pages_by_codec`` shows what ``auto`` chose in it.
    """

    iteration: int
    start_s: float
    end_s: float
    pages_sent: int
    wire_bytes: int
    dirty_pages_left: int  # dirty again when the pass ended (0 after stop-and-copy)
    pages_by_codec: dict[str, int] = field(default_factory=dict)
    stop_and_copy: bool = False

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class MigrationReport:
    codec: str
    workload: str = ""  # what the guest writes (its page contents), for titles and tables
    converged: bool = False
    verified: bool = False
    error: str | None = None
    total_time_s: float = 0.0
    downtime_s: float | None = None
    #: what pre-copy aimed the downtime at (``MigrationConfig.downtime_limit_s``), if known
    downtime_limit_s: float | None = None
    iterations: int = 0
    pages_sent: int = 0
    wire_bytes: int = 0
    codec_cpu_s: float = 0.0  # the codec engines' threads, by their own clocks
    sender_cpu_s: float = 0.0  # the sender's thread (framing, codecs it runs itself)
    modelled_device_s: float = 0.0
    modelled_host_cpu_s: float = 0.0  # emulated accelerators: offload cost per the model
    emulation_cpu_s: float = 0.0  # CPU our software stand-in burned (not the device's cost)
    fallback_batches: int = 0
    memory_bytes: int = 0
    page_size: int = 4096
    dirty_rate: float = 0.0  # what the guest was asked to dirty, bytes/s
    dirty_rate_achieved: float = 0.0  # what it managed while it ran (a Python thread)
    link_rate: float | None = None
    pages_by_codec: dict[str, int] = field(default_factory=dict)
    paths: dict[str, CodecPath] = field(default_factory=dict)
    iteration_log: list[IterationRecord] = field(default_factory=list)

    @property
    def guest_bytes_sent(self) -> int:
        """Guest memory the pages sent held, before any codec shrank it."""
        return self.pages_sent * self.page_size

    @property
    def ratio(self) -> float:
        return self.guest_bytes_sent / self.wire_bytes if self.wire_bytes else 0.0

    @property
    def throughput_pages_s(self) -> float:
        return self.pages_sent / self.total_time_s if self.total_time_s else 0.0

    @property
    def modelled(self) -> bool:
        """Some batches ran on emulated hardware: their device cost is a model."""
        return self.modelled_device_s > 0 or self.modelled_host_cpu_s > 0

    @property
    def extra_cpu_percent(self) -> float:
        """CPU of codec workers and the sender, in % of one core, over the migration:
        each thread's CPU clock, so that engines waiting for a core (more engines than
        cores) count only the time they ran.

        Batches encoded by an emulated accelerator count with the model's host cost of
        offloading them, not with the CPU our software stand-in spent (``modelled``).
        """
        if not self.total_time_s:
            return 0.0
        busy = self.codec_cpu_s + self.sender_cpu_s + self.modelled_host_cpu_s
        return 100.0 * busy / self.total_time_s

    @property
    def succeeded(self) -> bool:
        """Pre-copy converged and the destination verified the memory it received."""
        return self.converged and self.verified and self.error is None

    @property
    def downtime_exceeded(self) -> bool:
        """The guest was paused for longer than the downtime limit. Pre-copy stops once the
        pages left should take no longer than the limit; the stop-and-copy then also pays
        for both ends' memory digests and the verdict, and runs on a machine whose speed
        changes, so it can take longer than estimated. The memory still arrived
        (``succeeded`` may be true), but the migration missed its limit."""
        return (
            self.downtime_s is not None
            and self.downtime_limit_s is not None
            and self.downtime_s > self.downtime_limit_s
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data.update(
            guest_bytes_sent=self.guest_bytes_sent,
            ratio=self.ratio,
            throughput_pages_s=self.throughput_pages_s,
            extra_cpu_percent=self.extra_cpu_percent,
            modelled=self.modelled,
            succeeded=self.succeeded,
            downtime_exceeded=self.downtime_exceeded,
        )
        return data
