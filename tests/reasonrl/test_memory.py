"""The CPU heap: what a step frees goes back to the OS (reasonrl/memory.py), and the loop does it after each
update every trainer.release_memory_every steps."""
from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from reasonrl import memory


def rss_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_release_free_returns_the_free_pages_between_live_blocks():
    """200 MB of 64 KB blocks (under glibc's mmap threshold: heap memory), written so they are resident, then all
    freed but the last: the heap cannot shrink past that live block, so the RSS stays until release_free."""
    libc = memory.libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        pytest.skip("not glibc")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, n = 64 * 1024, 3200
    memory.release_free()
    blocks = [libc.malloc(size) for _ in range(n)]
    for b in blocks:
        ctypes.memset(b, 1, size)
    for b in blocks[:-1]:
        libc.free(b)
    held = rss_mb()
    assert memory.release_free()
    after = rss_mb()
    libc.free(blocks[-1])
    assert held - after > 0.8 * size * n / 2**20, (held, after)  # nearly all of the 200 MB back


@pytest.mark.parametrize("every, calls", [(1, 3), (2, 1), (0, 0)])
def test_the_loop_releases_the_heap_every_n_steps(tmp_path, monkeypatch, every, calls):
    import reasonrl.loop as loop
    from tests.test_train import cfg_for

    seen = []
    monkeypatch.setattr(loop, "release_free", lambda: seen.append(1) or True)
    loop.run(cfg_for(tmp_path, "trainer.steps=3", "logging.name=heap", f"trainer.release_memory_every={every}"))
    assert len(seen) == calls
