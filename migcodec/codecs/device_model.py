"""Modelled accelerator timing, for simulation only: every number here is a model.

Machines without QAT, IAA or DSA still need to tell a selector and the reference engine what
the device *would* have cost. Each :class:`DeviceModel` holds engines, throughput,
per-request latency and host CPU per request, each with its published source, or marked as
an assumption where no public figure was found. Emulated plugin results carry
``stats.device_s`` from :meth:`DeviceModel.request_time` beside the measured CPU time of the
emulation (``stats.cpu_s``); reports must call it "modelled", never "measured".

The model is deliberately simple: a request occupies one engine for ``latency + bytes /
engine throughput``; the device's published throughput is shared evenly by its engines.
"""

from __future__ import annotations

from dataclasses import dataclass

LABEL = "modelled"
GBIT = 1e9 / 8  # bytes per second in one Gbit/s
PAGE = 4096


@dataclass(frozen=True)
class DeviceModel:
    """Timing of one accelerator device type. All figures are *modelled*."""

    device: str
    engines: int
    #: bytes of guest data per second one device processes with every engine busy
    throughput_Bps: float
    #: fixed time per request (submission, completion, DMA set-up), seconds
    request_latency_s: float
    #: host CPU per request (submit, poll, bookkeeping), seconds
    host_cpu_per_request_s: float
    #: host CPU per guest page in the request, seconds
    host_cpu_per_page_s: float
    #: where each number comes from
    sources: tuple[str, ...]
    label: str = LABEL

    @property
    def engine_Bps(self) -> float:
        return self.throughput_Bps / self.engines

    def request_time(self, nbytes: int, pages: int | None = None) -> float:
        """Modelled device time of one request of ``nbytes`` guest bytes on one engine.

        ``pages`` is accepted for per-page devices (IAA runs one job per page; the
        latency then overlaps across the device's engines) and defaults to whole pages.
        """
        pages = -(-nbytes // PAGE) if pages is None else pages
        jobs = max(pages, 1) if self.device == "iaa" else 1
        parallel = min(jobs, self.engines)  # per-page jobs spread over the engines
        waves = -(-jobs // self.engines)
        return self.request_latency_s * waves + nbytes / (self.engine_Bps * parallel)

    def host_cpu_s(self, nbytes: int, pages: int | None = None) -> float:
        """Modelled host CPU of one request (what offload still costs the sender)."""
        pages = -(-nbytes // PAGE) if pages is None else pages
        return self.host_cpu_per_request_s + self.host_cpu_per_page_s * pages

    def throughput(self, devices: int = 1) -> float:
        """Modelled bytes per second of ``devices`` devices with all engines busy."""
        return self.throughput_Bps * devices

    def describe(self) -> str:
        return (
            f"{self.device} ({self.label}): {self.engines} engines, "
            f"{self.throughput_Bps / GBIT:.1f} Gbit/s per device, "
            f"{self.request_latency_s * 1e6:.0f} us per request"
        )


# QAT. Throughput: Intel QuickAssist Adapter 8950 product brief, "compression/decompression
# (static, dynamic): 24 Gbps".
# Cross-check: QEMU docs/devel/migration/qatzip-compression.rst, 4 QAT devices, 8 multifd
# channels, 10 Gbit/s link: 2,940,235 pages/s = 12.0 GB/s of guest data, i.e. >= 3.0 GB/s
# per device (link-bound, so a lower bound) -- consistent with 24 Gbit/s = 3.0 GB/s.
# Host CPU: same QEMU table, sender CPU 160 % at 2,940,235 pages/s (zstd: 810 % at
# 2,391,465 pages/s) -> 1.6 / 2,940,235 = 0.544 us of sender CPU per page, all of QEMU's
# send path included. Engines and latency: ASSUMED (no public per-request figure found);
# QAT pipelines requests internally, so it is modelled as a single server at the device rate
# with 20 us of fixed cost per request.
QAT = DeviceModel(
    device="qat",
    engines=1,
    throughput_Bps=24 * GBIT,
    request_latency_s=20e-6,
    host_cpu_per_request_s=0.0,
    host_cpu_per_page_s=1.6 / 2_940_235,
    sources=(
        "Intel QuickAssist Adapter 8950 product brief: 24 Gbit/s compression",
        "QEMU docs/devel/migration/qatzip-compression.rst: 4 devices, 8 channels, 10 Gbit/s "
        "link, 2,940,235 pages/s, sender CPU 160% (zstd 810%)",
        "engines=1 and 20 us/request: assumption, no published figure",
    ),
)

# IAA. Engines: QEMU docs/devel/migration/qpl-compression.rst, "One IAA device has 8 work
# queues and 8 processing engines"; the same document: QPL supports a 4 KiB history only.
# Throughput: QEMU's qpl retry/software-fallback commit (multifd-qpl, Yuan Liu, 2024):
# 1 IAA device, 4 multifd channels, 17,667 Mbit/s migration throughput -- a lower bound of
# the device rate.
# Latency and host CPU: ASSUMED (no public figure found): 2 us per page job, 0.2 us of
# host CPU to build and submit one descriptor.
IAA = DeviceModel(
    device="iaa",
    engines=8,
    throughput_Bps=17.667 * GBIT,
    request_latency_s=2e-6,
    host_cpu_per_request_s=0.0,
    host_cpu_per_page_s=0.2e-6,
    sources=(
        "QEMU docs/devel/migration/qpl-compression.rst: 8 engines per IAA device",
        "QEMU multifd-qpl retry/fallback commit: 1 IAA device, 4 channels, 17,667 Mbit/s",
        "2 us per page job and 0.2 us host CPU per page: assumption, no published figure",
    ),
)

# DSA. Engines: Intel DSA architecture specification, up to 4 engines per device (also
# Kuper et al., "A Quantitative Analysis and Guidelines of Data Streaming Accelerator in
# Modern Intel Xeon Scalable Processors", ASPLOS 2024, arXiv 2305.02480). Throughput: the
# same paper reports roughly 30 GB/s per device for large transfers (approximate). Latency
# and host CPU: ASSUMED, 1 us per
# descriptor, 0.1 us host CPU per page (one descriptor per page in a batch).
DSA = DeviceModel(
    device="dsa",
    engines=4,
    throughput_Bps=30e9,
    request_latency_s=1e-6,
    host_cpu_per_request_s=0.5e-6,
    host_cpu_per_page_s=0.1e-6,
    sources=(
        "Intel DSA architecture specification: 4 engines per device",
        "Kuper et al., ASPLOS 2024 (arXiv 2305.02480): ~30 GB/s per device, approximate",
        "1 us per descriptor and host CPU figures: assumption, no published figure",
    ),
)

DEVICE_MODELS: dict[str, DeviceModel] = {m.device: m for m in (QAT, IAA, DSA)}


def device_model(device: str) -> DeviceModel:
    """The modelled timing of ``device`` (``"qat"``, ``"iaa"`` or ``"dsa"``)."""
    try:
        return DEVICE_MODELS[device]
    except KeyError:
        known = ", ".join(sorted(DEVICE_MODELS))
        raise KeyError(f"no device model named {device!r}; known: {known}") from None
