"""A child process with a private anonymous buffer whose pages the test changes on command.

Protocol (one JSON object per line on stdin, one line back on stdout):
  start: prints {"address": A, "pages": N, "page_size": P} once the first ``touched`` pages
  are written (the rest stay absent); then per command
  {"whole": [[page, byte], ...], "words": [[page, word, value], ...], "free": [page, ...]}
  fills whole pages with a byte, sets 8-byte words, or drops pages (MADV_DONTNEED, they
  read as zero again), and answers "ok"; {"protect": [first, count, "rw" | "r" | ""]}
  (before the rest of its command) changes the protection of ``count`` pages (mprotect);
  {"read": [page, ...]} reads a byte of each page (an absent one maps the zero page), and
  {"unmap": page} unmaps one page (last: the page may not be touched again).
  {"exit": true} or end of input exits.
  With ``--churn-ms T`` it instead rewrites page 0 in a loop for T ms and exits by itself.
"""

import ctypes
import json
import mmap
import sys
import time

import numpy as np


def main() -> None:
    pages, touched = int(sys.argv[1]), int(sys.argv[2])
    churn_ms = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--churn-ms" else None
    size = mmap.PAGESIZE
    buf = mmap.mmap(-1, pages * size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mem = np.frombuffer(buf, dtype=np.uint8).reshape(pages, size)
    words = mem.view("<u8")
    mem[:touched] = (np.arange(touched, dtype=np.uint8) + 1)[:, None]
    address = np.frombuffer(buf, dtype=np.uint8).ctypes.data
    print(json.dumps({"address": address, "pages": pages, "page_size": size}), flush=True)
    if churn_ms is not None:
        end = time.monotonic() + churn_ms / 1000
        i = 0
        while time.monotonic() < end:
            words[0, 0] = i
            i += 1
            time.sleep(0.001)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    seen = 0
    protections = {"rw": mmap.PROT_READ | mmap.PROT_WRITE, "r": mmap.PROT_READ, "": 0}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("exit"):
            break
        if "protect" in cmd:
            first, count, how = cmd["protect"]
            if libc.mprotect(address + first * size, count * size, protections[how]) != 0:
                raise OSError(ctypes.get_errno(), "mprotect")
        for page, byte in cmd.get("whole", []):
            mem[page] = byte
        for page, word, value in cmd.get("words", []):
            words[page, word] = value
        for page in cmd.get("free", []):
            buf.madvise(mmap.MADV_DONTNEED, page * size, size)
        for page in cmd.get("read", []):
            seen += int(mem[page, 0])
        if "unmap" in cmd and libc.munmap(address + cmd["unmap"] * size, size) != 0:
            raise OSError(ctypes.get_errno(), "munmap")
        print("ok", flush=True)


if __name__ == "__main__":
    main()
