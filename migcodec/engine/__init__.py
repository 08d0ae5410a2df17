"""A reference pre-copy migration over a real socket, measuring what users care about."""

from migcodec.engine.chooser import CodecChooser, FixedChooser
from migcodec.engine.destination import receive_migration
from migcodec.engine.dirty import DirtyLog
from migcodec.engine.guest import GuestWorkload
from migcodec.engine.link import PacedSocket, parse_rate, parse_size
from migcodec.engine.report import MigrationReport
from migcodec.engine.runner import run_loopback
from migcodec.engine.source import MigrationConfig, MigrationSource

__all__ = [
    "CodecChooser",
    "DirtyLog",
    "FixedChooser",
    "GuestWorkload",
    "MigrationConfig",
    "MigrationReport",
    "MigrationSource",
    "PacedSocket",
    "parse_rate",
    "parse_size",
    "receive_migration",
    "run_loopback",
]
