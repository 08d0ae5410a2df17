"""A small Linux guest for QEMU: Debian's kernel and a busybox initramfs with a given /init.

Shared by the corpus scripts that run a QEMU guest (``capture.py qemu`` records its RAM
from the host side, ``qemu_stream.py`` migrates it to a file). Nothing is installed: the
kernel is /boot's when there is one, else Debian's package file fetched with
``apt-get download`` and unpacked into a cache directory; busybox comes from the
busybox-static package.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class Missing(RuntimeError):
    """A program or file the capture needs is not installed; the message names the package."""


def cache_dir() -> Path:
    """Where fetched packages are unpacked: ``$XDG_CACHE_HOME/migcodec-corpus``."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "migcodec-corpus"


def debian_kernel() -> Path:
    """A Debian kernel image: /boot's when linux-image-amd64 is installed, else the package
    file fetched with ``apt-get download`` and unpacked into the cache (not installed)."""
    booted = sorted(Path("/boot").glob("vmlinuz-*"))
    if booted:
        return booted[-1]
    cache = cache_dir()
    found = sorted(cache.glob("kernel/boot/vmlinuz-*"))
    if found:
        return found[-1]
    deps = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True
    ).stdout
    names = [w for w in deps.split() if w.startswith("linux-image-") and w != "linux-image-amd64"]
    if not names:
        raise Missing(
            "no kernel package known to apt: run apt-get update, or apt-get install "
            "linux-image-amd64"
        )
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", names[0]], cwd=cache, check=True)
    deb = sorted(cache.glob(f"{names[0]}_*.deb"))[-1]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "kernel")], check=True)
    deb.unlink()
    return sorted(cache.glob("kernel/boot/vmlinuz-*"))[-1]


def write_initramfs(path: Path, init: str) -> None:
    """An uncompressed newc cpio archive holding ``init`` as /init and a static busybox,
    with empty /proc, /dev, /sys, /w and /tmp to mount on."""
    busybox = Path("/bin/busybox")
    if not busybox.exists() or not _is_static(busybox):
        raise Missing("a static busybox is needed: apt-get install busybox-static")
    entries: list[tuple[str, int, bytes]] = [
        ("bin", 0o40755, b""), ("proc", 0o40755, b""), ("dev", 0o40755, b""),
        ("sys", 0o40755, b""), ("w", 0o40755, b""), ("tmp", 0o41777, b""),
        ("bin/busybox", 0o100755, busybox.read_bytes()),
        ("init", 0o100755, init.encode()),
    ]  # fmt: skip
    with open(path, "wb") as f:
        for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
            raw = name.encode() + b"\0"
            fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
            header = b"070701" + b"".join(b"%08x" % v for v in fields)
            f.write(header + raw + b"\0" * (-(len(header) + len(raw)) % 4))
            f.write(data + b"\0" * (-len(data) % 4))


def _is_static(exe: Path) -> bool:
    """No dynamic loader named near the start (where an ELF's PT_INTERP string lives): the
    guest has no libraries, so busybox-static's binary is needed, not busybox's."""
    return b"ld-linux" not in exe.read_bytes()[:4096]
