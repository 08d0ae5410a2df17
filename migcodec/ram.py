"""How much RAM this machine can still give, asked before a large buffer is allocated.

numpy refuses an impossible size with a traceback, and accepts a merely too large one
(the kernel lends pages lazily), to be killed later when they are touched. Whatever sizes a
buffer from input (a ``--memory`` option, a window a trace announces) checks it against
:func:`available_memory` first. A leaf module (like ``units``), so every package can use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: where the kernel says which control groups this process is in, and where it mounts them
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"
#: a memory limit at least this large is no limit (cgroup v1 writes "no limit" as 2**63
#: rounded down to a page)
_NO_LIMIT = 1 << 60


def available_memory() -> int | None:
    """Bytes of RAM that can be allocated without swapping (``MemAvailable``), or less
    where this process's memory control group (a container's) has a limit closer than
    that (:func:`cgroup_room`), or ``None`` where the system does not say. The kernel kills
    a process that outgrows its group's limit with the machine's memory still free: a
    check against the machine's alone would let a command in a container be killed
    without a word."""
    free = _meminfo_available()
    room = cgroup_room()
    if room is None:
        return free
    return room if free is None or room < free else free


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def cgroup_room(proc_cgroup: str | None = None, root: str | None = None) -> int | None:
    """Bytes this process's memory control group can still charge before its limit, or
    ``None`` where it has none (or the system does not say): the limit less what the group
    uses, not counting the file cache the kernel would reclaim first (inactive file
    pages). cgroup v2: the least room of the group and of each group above it
    (``memory.max``, ``memory.current``); v1: the hierarchical limit (``memory.stat``)
    against the group's usage."""
    try:
        with open(proc_cgroup or PROC_CGROUP, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    root = root or CGROUP_ROOT
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if "memory" in controllers.split(","):
            return _v1_room(os.path.join(root, "memory", path.lstrip("/")))
        if hierarchy == "0" and not controllers:
            room = None
            where = path.strip("/")
            while True:  # the group, then each above it up to the root
                level = _v2_room(os.path.join(root, where))
                if level is not None and (room is None or level < room):
                    room = level
                if not where:
                    return room
                where = os.path.dirname(where)
    return None


def _v2_room(group: str) -> int | None:
    return _room(
        _read_int(os.path.join(group, "memory.max")),
        _read_int(os.path.join(group, "memory.current")),
        _stat(os.path.join(group, "memory.stat")).get("inactive_file", 0),
    )


def _v1_room(group: str) -> int | None:
    stat = _stat(os.path.join(group, "memory.stat"))
    limit = stat.get("hierarchical_memory_limit")
    if limit is None:
        limit = _read_int(os.path.join(group, "memory.limit_in_bytes"))
    used = _read_int(os.path.join(group, "memory.usage_in_bytes"))
    return _room(limit, used, stat.get("total_inactive_file", stat.get("inactive_file", 0)))


def _room(limit: int | None, used: int | None, cache: int) -> int | None:
    """A group's room under ``limit`` (``None``, or a value that large: no limit) with
    ``used`` charged to it, of which ``cache`` is reclaimable file cache."""
    if limit is None or limit >= _NO_LIMIT:
        return None
    return max(limit - ((used or 0) - cache), 0)


def _read_int(path: str) -> int | None:
    """A file's one number, or ``None`` where it is missing or says ``max``."""
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _stat(path: str) -> dict[str, int]:
    """A ``memory.stat`` file's counters by name (none where it cannot be read)."""
    counters = {}
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if value.strip().isdigit():
                    counters[name] = int(value)
    except OSError:
        pass
    return counters


def short_of(n_bytes: int) -> int | None:
    """The bytes of RAM this machine has available when they are fewer than ``n_bytes``,
    else ``None`` (also where the system does not say): the caller refuses the buffer in
    its own words, naming both sizes."""
    free = available_memory()
    return free if free is not None and n_bytes > free else None


def refuse_short(n_bytes: int, refusal: Callable[[int], BaseException]) -> None:
    """Raise ``refusal(free)`` when this machine has fewer than ``n_bytes`` of RAM
    available (``free`` of them): a caller names both sizes in its own words."""
    free = short_of(n_bytes)
    if free is not None:
        raise refusal(free)


def thread_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is the interpreter's refusal of a new thread (a process limit on
    threads, or on memory, which a thread's stack counts against)."""
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)
