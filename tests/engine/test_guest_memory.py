"""Guest memory from a file or a shared-memory region: sizes, ownership, and receiving."""

from __future__ import annotations

import os
import socket
import threading
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from migcodec.codecs import Batch, CodecEngines, get_codec
from migcodec.codecs.plugins.lz4 import Lz4Codec
from migcodec.engine import (
    FixedChooser,
    GuestMemoryError,
    MigrationConfig,
    MigrationSource,
    make_guest,
    open_guest_memory,
    receive_migration,
)
from migcodec.wire import WireError

PAGE = 4096
SHM_DIR = Path("/dev/shm")


def pattern(n_pages: int) -> np.ndarray:
    """Bytes no generator produces: a ramp modulo 251, so no two pages are alike."""
    return (np.arange(n_pages * PAGE) % 251).astype(np.uint8)


def test_a_new_file_is_created_at_the_size_asked_and_keeps_what_was_written(tmp_path):
    path = tmp_path / "guest.img"
    with open_guest_memory(16 * PAGE, PAGE, path=path) as memory:
        assert memory.pages.shape == (16, PAGE) and memory.pages.dtype == np.uint8
        assert not memory.had_contents
        memory.pages[3] = 7
    data = np.fromfile(path, np.uint8)
    assert data.size == 16 * PAGE
    assert (data[3 * PAGE : 4 * PAGE] == 7).all() and not data[: 3 * PAGE].any()


def test_an_existing_file_is_used_whole_grown_or_used_from_its_start(tmp_path):
    path = tmp_path / "guest.img"
    pattern(4).tofile(path)
    with open_guest_memory(None, PAGE, path=path) as memory:  # whole file
        assert memory.pages.shape == (4, PAGE) and memory.had_contents
        assert (memory.pages.ravel() == pattern(4)).all()
    with open_guest_memory(2 * PAGE, PAGE, path=path) as memory:  # its first pages
        assert memory.pages.shape == (2, PAGE)
    assert path.stat().st_size == 4 * PAGE
    with open_guest_memory(8 * PAGE, PAGE, path=path) as memory:  # grown with zero pages
        assert (memory.pages[:4].ravel() == pattern(4)).all() and not memory.pages[4:].any()
    assert path.stat().st_size == 8 * PAGE


def test_a_file_that_is_not_whole_pages_is_refused(tmp_path):
    path = tmp_path / "odd.img"
    path.write_bytes(b"x" * (PAGE + 100))
    with pytest.raises(GuestMemoryError) as err:
        open_guest_memory(None, PAGE, path=path)
    assert str(err.value) == (
        f"--memory-file {path} holds {PAGE + 100} bytes, not a whole number of {PAGE}-byte "
        f"pages: guest memory is pages; truncate it to {PAGE} bytes or extend it to "
        f"{2 * PAGE} (truncate -s), or give an image of whole pages"
    )
    assert path.read_bytes() == b"x" * (PAGE + 100)  # left as it was


def test_a_region_we_create_is_removed_on_close(shm_name):
    with open_guest_memory(8 * PAGE, PAGE, shm_name=shm_name) as memory:
        assert not memory.had_contents
        memory.pages[:] = 1
        cycle: list = [memory.pages]
        cycle.append(cycle)  # a view only the garbage collector can free
        del cycle
    with pytest.raises(FileNotFoundError):
        SharedMemory(shm_name)


def test_a_region_a_stuck_codec_still_reads_is_left_mapped_when_closed(shm_name):
    """A codec call left running (its encode never returned) may still read the guest's
    pages: closing the region removes its name, but leaves its mapping to the call's views
    of it (unmapped, the codec's next read would crash the process)."""
    gate, started = threading.Event(), threading.Event()

    class Stuck(Lz4Codec):
        def encode_pages(self, pages):
            started.set()
            gate.wait()
            return None  # reads nothing after: a test that fails must not crash pytest

    memory = open_guest_memory(8 * PAGE, PAGE, shm_name=shm_name)
    memory.pages[:] = 1  # not zero pages, which a codec is not asked to encode
    mapping = memory.pages.base
    engines = CodecEngines(Stuck(), engines=1, depth=1, page_size=PAGE)
    try:
        engines.submit(Batch(memory.pages, [(0, 4)]), snapshot=False)
        assert started.wait(10)
        assert engines.stop() == 1
        memory.close()
        assert not (SHM_DIR / shm_name).exists()
        assert not mapping.closed
    finally:
        gate.set()


def test_a_region_someone_else_created_is_attached_and_left_in_place(foreign_shm):
    shm_name = foreign_shm(8 * PAGE)
    with open_guest_memory(None, PAGE, shm_name=shm_name) as memory:
        assert memory.pages.shape == (8, PAGE) and memory.had_contents
        memory.pages[5] = 9
    data = np.fromfile(SHM_DIR / shm_name, np.uint8)
    assert (data[5 * PAGE : 6 * PAGE] == 9).all()


def test_a_region_smaller_than_the_memory_asked_is_refused_and_left_in_place(foreign_shm):
    shm_name = foreign_shm(4 * PAGE)
    with pytest.raises(GuestMemoryError) as err:
        open_guest_memory(8 * PAGE, PAGE, shm_name=shm_name)
    assert str(err.value).endswith(
        f"holds {4 * PAGE} bytes; the guest needs {8 * PAGE} (a shared-memory region cannot "
        f"grow): migrate a guest of {4 * PAGE} bytes or less (--memory, on the source), or "
        f"remove the region (rm /dev/shm/"
        f"{shm_name}) to have one made"
    )
    assert (SHM_DIR / shm_name).stat().st_size == 4 * PAGE


def test_an_empty_region_is_refused_by_its_size_and_left_in_place(foreign_shm):
    """mmap refuses an empty file with a ValueError, which reached the command line as a
    traceback."""
    shm_name = foreign_shm(0)
    with pytest.raises(GuestMemoryError) as err:
        open_guest_memory(8 * PAGE, PAGE, shm_name=shm_name)
    assert str(err.value) == (
        f"--shm {shm_name} holds 0 bytes, and a shared-memory region cannot grow; remove it "
        f"(rm /dev/shm/{shm_name}) or name another region"
    )
    assert (SHM_DIR / shm_name).exists()


def test_a_file_and_a_region_at_once_is_refused(tmp_path, shm_name):
    with pytest.raises(GuestMemoryError, match="not both"):
        open_guest_memory(PAGE, PAGE, path=tmp_path / "m", shm_name=shm_name)


def _migrate_into(opener, n_pages: int = 256):
    """Migrate a filled guest over a socket pair to ``receive_migration(opener)``."""
    src, dst = socket.socketpair()
    outcome: dict = {}

    def destination():
        with dst:
            try:
                outcome["summary"], _ = receive_migration(dst, opener)
            except WireError as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=destination)
    thread.start()
    memory = np.zeros((n_pages, PAGE), np.uint8)
    guest = make_guest(memory, 0.0, "mixed")
    source = MigrationSource(
        memory, FixedChooser(get_codec("lz4")), MigrationConfig(link_rate=None), guest.dirty, guest
    )
    try:
        with src:
            report = source.migrate(src)
    finally:
        thread.join(timeout=20)
    return report, memory, outcome


def test_the_destination_receives_into_memory_opened_at_the_size_the_source_announces(tmp_path):
    path = tmp_path / "received.img"
    opened = []

    def into_file(n_pages, page_size):
        opened.append(open_guest_memory(n_pages * page_size, page_size, path=path))
        return opened[-1].pages

    report, memory, outcome = _migrate_into(into_file)
    assert report.succeeded, report.error
    assert outcome["summary"].digest_verified
    opened[0].close()
    assert path.read_bytes() == memory.tobytes()


def test_destination_memory_that_cannot_open_refuses_the_stream_at_the_handshake():
    def fails(n_pages, page_size):
        raise GuestMemoryError("--shm x holds 4096 bytes; the guest needs 1048576")

    with pytest.raises(WireError, match="cannot open destination memory: --shm x holds 4096"):
        _migrate_into(fails)


def test_a_destination_array_of_the_wrong_size_refuses_the_stream_at_the_handshake():
    destination = np.zeros((64, PAGE), np.uint8)
    with pytest.raises(WireError, match="64 pages of 4096 bytes; the stream is for 32 pages"):
        _migrate_into(destination, n_pages=32)
    assert not destination.any()  # refused before any page arrived


def test_a_strided_destination_array_refuses_the_stream_at_the_handshake():
    backing = np.zeros((64, PAGE), np.uint8)
    with pytest.raises(WireError, match="writable, C-contiguous array"):
        _migrate_into(backing[::2], n_pages=32)
    assert not backing.any()


def test_a_fifo_or_a_device_is_refused_before_it_is_opened(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/null", tmp_path):
        with pytest.raises(GuestMemoryError, match=r"is not a regular file \(a directory, FIFO"):
            open_guest_memory(1 << 20, path=path)


def test_a_file_its_filesystem_has_no_room_for_is_refused_and_not_left_behind(
    tmp_path, monkeypatch
):
    import errno

    _fallocate_fails(monkeypatch, errno.ENOSPC)
    path = tmp_path / "guest.bin"
    with pytest.raises(
        GuestMemoryError, match="its filesystem has no room for the 1048576 bytes of guest memory"
    ):
        open_guest_memory(1 << 20, path=path)
    assert not path.exists()


def test_a_grown_file_is_allocated_on_its_filesystem_not_left_sparse(tmp_path):
    path = tmp_path / "guest.bin"
    with open_guest_memory(1 << 20, path=path) as memory:
        assert memory.pages.shape == (256, 4096) and not memory.pages.any()
    assert path.stat().st_blocks * 512 >= 1 << 20  # blocks reserved, not a hole


def test_a_region_name_that_is_no_name_is_refused():
    for name in ("", "a/b"):
        with pytest.raises(GuestMemoryError, match="is not a shared-memory region's name"):
            open_guest_memory(1 << 20, shm_name=name)


@pytest.mark.parametrize("name", ["gäst", "guest:0", "guest\n0", "guest 0", ".", "..", "g" * 251])
def test_a_region_name_the_resource_tracker_cannot_carry_is_refused_before_creating_it(name):
    """Python's resource tracker sends names as ASCII ``REGISTER:name:type`` lines: outside
    ASCII ``SharedMemory`` failed with a UnicodeEncodeError after making the region (left
    behind), and ``:`` or a newline broke the tracker's protocol."""
    with pytest.raises(GuestMemoryError) as caught:
        open_guest_memory(1 << 20, shm_name=name)
    assert str(caught.value) == (
        f"--shm {name!r} is not a shared-memory region's name: give at most 250 letters, "
        "digits, '.', '_' or '-' (not only dots), e.g. guest0"
    )
    assert name not in os.listdir("/dev/shm")


def test_an_existing_sparse_file_is_allocated_before_it_is_mapped(tmp_path, monkeypatch):
    """Its holes would be written through the mapping: on a full filesystem, SIGBUS."""
    import errno

    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(1 << 20)  # all hole
    calls = _fallocate_fails(monkeypatch, errno.ENOSPC)
    with pytest.raises(GuestMemoryError, match="its filesystem has no room for the 1048576 bytes"):
        open_guest_memory(1 << 20, path=path)
    assert calls == [(0, 1 << 20)] and path.exists()  # not ours to remove: it was there


def test_an_existing_sparse_file_larger_than_the_free_space_is_refused_without_filling_it(
    tmp_path, monkeypatch
):
    """posix_fallocate that runs out of room keeps what it took: a sparse 10 TiB image
    with --keep-contents left a disk of 78 GiB free at 100 %, the image still there."""
    import errno

    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(1 << 20)  # all hole
    real = os.fstatvfs

    def little_room(fd):
        stats = real(fd)
        return os.statvfs_result((*stats[:4], (1 << 19) // stats.f_frsize, *stats[5:]))

    monkeypatch.setattr(os, "fstatvfs", little_room)
    calls = _fallocate_fails(monkeypatch, errno.ENOSPC)
    with pytest.raises(GuestMemoryError) as caught:
        open_guest_memory(path=path, must_exist=True)
    assert str(caught.value) == (
        f"--memory-file {path}: its filesystem has no room for the 1048576 bytes of guest "
        "memory; free space there, use a smaller --memory, or put the file elsewhere"
    )
    assert calls == [] and path.stat().st_blocks == 0  # nothing taken


def test_a_filesystem_that_cannot_allocate_ahead_grows_the_file_if_it_has_room(
    tmp_path, monkeypatch
):
    import errno

    _fallocate_fails(monkeypatch, errno.EOPNOTSUPP)
    path = tmp_path / "guest.bin"
    with open_guest_memory(1 << 20, path=path) as memory:
        memory.pages[-1, -1] = 7
    assert path.stat().st_size == 1 << 20 and path.read_bytes()[-1] == 7


def _fallocate_fails(monkeypatch, code: int) -> list[tuple[int, int]]:
    """``os.posix_fallocate`` failing with errno ``code``; returns the calls it gets."""
    import os

    calls: list[tuple[int, int]] = []

    def failing(fd, offset, length):
        calls.append((offset, length))
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "posix_fallocate", failing)
    return calls


def test_a_region_its_filesystem_has_no_room_for_is_refused_and_removed(shm_name, monkeypatch):
    """A region is a file of /dev/shm: left sparse, its pages are found only when written,
    and on a full /dev/shm (64 MiB in a container by default) the first page written past
    its room kills the process with SIGBUS, in the middle of a migration."""
    import errno

    calls = _fallocate_fails(monkeypatch, errno.ENOSPC)
    with pytest.raises(GuestMemoryError) as caught:
        open_guest_memory(1 << 20, shm_name=shm_name)
    assert str(caught.value) == (
        f"--shm {shm_name}: /dev/shm has no room for the 1048576 bytes of guest memory; free "
        "space there, use a smaller --memory, or use a --memory-file"
    )
    assert calls == [(0, 1 << 20)]
    assert not (SHM_DIR / shm_name).exists()  # made here, so not left behind


def test_a_refusal_for_room_says_what_the_caller_can_change(shm_name, monkeypatch):
    """A destination's memory is the size the source announced, and ``receive`` has no
    --memory: its refusal told the user to use a smaller one."""
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 1 << 20)
    fix = "the size is the source's guest: send a smaller one"
    with pytest.raises(GuestMemoryError) as caught:
        open_guest_memory(4 << 20, shm_name=shm_name, smaller=fix)
    assert str(caught.value) == (
        f"--shm {shm_name} needs 4 MiB of RAM, but this machine has 1 MiB available; {fix}"
    )
    with pytest.raises(GuestMemoryError, match=r"available; use a smaller --memory$"):
        open_guest_memory(4 << 20)
    assert not (SHM_DIR / shm_name).exists()


def test_a_region_is_allocated_before_it_is_mapped_not_left_sparse(shm_name, foreign_shm):
    with open_guest_memory(1 << 20, shm_name=shm_name):
        assert (SHM_DIR / shm_name).stat().st_blocks * 512 >= 1 << 20
    sparse = foreign_shm(1 << 20)  # all hole, as another program may leave it
    with open_guest_memory(1 << 20, shm_name=sparse):
        assert (SHM_DIR / sparse).stat().st_blocks * 512 >= 1 << 20
    assert (SHM_DIR / sparse).stat().st_size == 1 << 20  # not ours: its size as it was


def test_a_memory_file_that_cannot_be_made_is_refused_before_anything_waits(tmp_path):
    """Root passes the permission bits, so /proc (where no file can be made) passed the
    check and a destination learnt it once a source had connected; a loop of symbolic links
    too. A link to a file yet to be made is followed: the file is made where it points."""
    from migcodec.engine.guest_memory import check_backing

    if os.path.isdir("/proc/self"):
        with pytest.raises(GuestMemoryError) as info:
            check_backing(path="/proc/guest.img")
        assert str(info.value).startswith(
            "--memory-file /proc/guest.img: no file can be made in /proc ("
        )
    loop = tmp_path / "a"
    os.symlink(tmp_path / "b", loop)
    os.symlink(loop, tmp_path / "b")
    with pytest.raises(GuestMemoryError) as info:
        check_backing(path=loop)
    assert str(info.value) == (
        f"--memory-file {loop} is a loop of symbolic links; give the path of a file"
    )
    link = tmp_path / "link.img"
    os.symlink(tmp_path / "made.img", link)
    check_backing(path=link)
    with open_guest_memory(8 * PAGE, PAGE, path=link) as memory:
        assert memory.pages.shape == (8, PAGE)
    assert (tmp_path / "made.img").stat().st_size == 8 * PAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "link.img", "made.img"]
