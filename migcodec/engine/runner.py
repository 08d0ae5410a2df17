"""Both ends of a migration in one process over loopback TCP: the ``migrate`` command."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np

from migcodec.codecs.bounded import Watch, stuck_in, watch_this_thread
from migcodec.engine.chooser import CodecChooser
from migcodec.engine.destination import RECEIVE_TIMEOUT_S, receive_migration
from migcodec.engine.guest import FillProgress, make_guest
from migcodec.engine.guest_memory import check_available, open_guest_memory
from migcodec.engine.progress import ProgressCallback
from migcodec.engine.report import MigrationReport
from migcodec.engine.source import (
    DESTINATION_CLOSED,
    STOP_GRACE_S,
    MigrationConfig,
    MigrationSource,
)


def run_loopback(
    memory: int | np.ndarray,
    chooser: CodecChooser,
    config: MigrationConfig,
    dirty_rate: float = 0.0,
    content: str = "memcached",
    pattern: str = "uniform",
    style: str = "whole",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    fill: bool = True,
    fill_progress: FillProgress | None = None,
    prefault_destination: bool = True,
) -> MigrationReport:
    """Fill a guest, start it dirtying, and migrate it to a destination thread over a real
    loopback TCP connection. The run succeeds only once the destination has confirmed
    that its memory digest matches the source's (``report.verified``).

    ``memory`` is a size in bytes (anonymous memory), or the guest's pages (e.g. from
    :func:`~migcodec.engine.guest_memory.open_guest_memory`); ``fill=False`` migrates what they
    hold instead of generated contents, and ``fill_progress(pages_filled, total)`` follows
    the filling of a large guest. The destination's memory is allocated and every page of
    it touched before the stream starts (``prefault_destination``; see
    :func:`_destination_memory`). The report carries ``config``'s downtime limit, so that
    ``report.downtime_exceeded`` can tell a stop-and-copy that took longer than allowed.
    """
    if not isinstance(memory, np.ndarray):
        memory = open_guest_memory(memory, config.page_size).pages
    guest = make_guest(memory, dirty_rate, content, pattern, style, seed, fill, fill_progress)
    # built first: a codec that cannot run this stream is refused before any connection
    source = MigrationSource(memory, chooser, config, guest.dirty, guest, progress)
    received = _destination_memory(memory) if prefault_destination else None
    outcome: dict = {}
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        watch = Watch()  # the codec call the destination is in, if it never returns

        def destination() -> None:
            watch_this_thread(watch)
            conn, _ = server.accept()
            with conn:
                try:
                    receive_migration(conn, received, timeout_s=RECEIVE_TIMEOUT_S)
                except BaseException as exc:  # reported below, beside the source's view
                    outcome["error"] = exc

        # a daemon: a codec whose decode never returns holds it, and the process exits
        # anyway (its memory, ``received``, is numpy's: the thread's references keep it)
        thread = threading.Thread(target=destination, name="migcodec-destination", daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            report = source.migrate(sock)  # waits for the verdict until past its time limit
        # the source has closed the stream: the destination ends once it has decoded what
        # it read, unless a decode does not return
        stuck = stuck_in(thread, watch, time.perf_counter(), STOP_GRACE_S, _INSTEAD)
    report.downtime_limit_s = config.downtime_limit_s
    if stuck is not None:  # why the source never heard back, whatever it says of that
        report.error, report.verified = f"destination failed: {stuck}", False
    # the destination's reason, where the source saw no other than the connection closing
    # (a codec whose decode fails: the source's report said to read an output there is not)
    elif "error" in outcome and (
        report.error is None or report.error.startswith(DESTINATION_CLOSED)
    ):
        report.error = f"destination failed: {outcome['error']}"
    return report


#: what the user of a loopback migration can do about a codec stuck at the destination
_INSTEAD = "choose another --codec"


def _destination_memory(memory: np.ndarray) -> np.ndarray:
    """The destination's memory, every page touched before the migration starts, as a
    destination VM's RAM is when it is allocated up front: a first write to a page costs
    a page fault (several microseconds each on a virtual machine's host), the same for
    every codec, and left in the stream it would take most of a first pass over memory
    that compresses well, and most of its spread from run to run."""
    check_available(
        memory.nbytes, "destination memory", fix="migrate less memory, or free memory here"
    )
    received = np.empty_like(memory)
    received.fill(0)
    return received
