"""Record the tables the must-show tests replay: ``python -m tests.selector.record_tables``.

Why recorded: a policy's score on a table is a property of the policy, but a table's timings
are a property of the machine and the moment. Built afresh inside a test on a shared CI
machine, the 10 Gbit/s close calls (lz4 against raw, where two workers' lz4 rate is within
15 % of the link) flip with every slowdown and the test fails for reasons that are not the
policy's. Recorded once on a quiet machine (median of 5 interleaved runs per cell), the
replay is deterministic and a score that drops is the policy's doing. Re-record after
changing the stand-ins, the feature extractor or the table format.
"""

from __future__ import annotations

from pathlib import Path

from migcodec.selector import DEFAULT_ARMS, Arm
from migcodec.selector.evaluation import Table, build_table
from tests.selector.standins import StandInDelta, phased_windows

DATA = Path(__file__).parent / "data"
SEEDS = (0, 1)
WINDOWS, PAGES = 30, 1024


def table_path(seed: int) -> Path:
    return DATA / f"phased-{WINDOWS}x{PAGES}-seed{seed}.npz"


def arms() -> list[Arm]:
    return [Arm.of(a) for a in DEFAULT_ARMS] + [Arm.of(StandInDelta())]


def record(seed: int, repeats: int = 5) -> Table:
    return build_table(phased_windows(WINDOWS, PAGES, seed), arms(), repeats=repeats)


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for seed in SEEDS:
        record(seed).save(table_path(seed))
        print(f"wrote {table_path(seed)}")


if __name__ == "__main__":
    main()
