"""A reference pre-copy migration over a real socket, measuring what users care about."""

from migcodec.engine.chooser import CodecChooser, FixedChooser
from migcodec.engine.destination import receive_migration
from migcodec.engine.dirty import DirtyLog
from migcodec.engine.guest import GuestWorkload, make_guest
from migcodec.engine.guest_memory import GuestMemory, GuestMemoryError, open_guest_memory
from migcodec.engine.link import PacedSocket
from migcodec.engine.progress import MigrationProgress
from migcodec.engine.report import IterationRecord, MigrationReport
from migcodec.engine.runner import run_loopback
from migcodec.engine.source import MigrationConfig, MigrationSource
from migcodec.units import parse_rate, parse_size  # re-exported: part of this API

__all__ = [
    "CodecChooser",
    "DirtyLog",
    "FixedChooser",
    "GuestMemory",
    "GuestMemoryError",
    "GuestWorkload",
    "IterationRecord",
    "MigrationConfig",
    "MigrationProgress",
    "MigrationReport",
    "MigrationSource",
    "PacedSocket",
    "make_guest",
    "open_guest_memory",
    "parse_rate",
    "parse_size",
    "receive_migration",
    "run_loopback",
]
