"""Process memory on a CPU: glibc's heap keeps what a tensor freed and hands it out again in pieces, so the
resident size of a 100M+ parameter model's training step grows well past what its tensors need at any one
time: glibc raises its mmap threshold to 32 MB as large blocks are freed, and every activation below that then
comes from a heap that never shrinks. Measured on SmolLM2-135M, one update of 16 x (150 + 256) tokens with
gradient checkpointing and 2048-token micro-batches: 4.3 GB peak as glibc stands, 3.8 GB once tensors of 1 MB
or more take memory of their own from the OS and give it back when freed, at ~20 % of the update's speed
(page faults). Generation holds little memory but allocates a few MB every token, so the threshold applies to
the learning phase only (`mmapped`); elsewhere it stays at 32 MB, where glibc's own adjustment ends up.
`trainer.mmap_threshold_mb` sets the size (reasonrl.advice.auto_settings picks it for the model in hand).

Below the threshold, what a step frees stays in glibc's heap as free chunks between live ones, and the heap
gives back only its top: a long run's RSS then drifts up with the pattern of its frees although the memory in
use does not grow (measured under PRIME on the embedded model: RSS = a constant 501 MB + the heap's free
bytes at every step, the bytes in use constant to 0.1 MB over 40 minutes; benchmarks/memory_probe.py).
`release_free()` (malloc_trim) hands every free page back; the loop calls it after the update every
`trainer.release_memory_every` steps on a CPU. Not after every update: the next update faults the pages back in,
which made the embedded default's step 32 % slower (2.02 s against 1.53 s); every 100 steps costs ~0.3 %."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from contextlib import contextmanager

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
GLIBC_MAX_MB = 32  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: where glibc's dynamic threshold stops rising


@functools.cache
def libc():
    """glibc, or None elsewhere (musl, macOS): then the functions below do nothing. Looked up once (find_library
    runs ldconfig)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_free() -> bool:
    """Return the heap's free pages, wherever they lie in it, to the OS (glibc's malloc_trim(0)). Returns whether
    glibc did so."""
    c = libc()
    return bool(c is not None and hasattr(c, "malloc_trim") and c.malloc_trim(0))


def set_mmap_threshold(mb: int) -> bool:
    """Allocations of at least `mb` MB are mmapped (and unmapped when freed); 0 leaves glibc's setting. Returns
    whether it took effect (False off glibc)."""
    if mb <= 0:
        return False
    c = libc()
    if c is None or not hasattr(c, "mallopt"):
        return False
    return bool(c.mallopt(M_MMAP_THRESHOLD, int(mb * 2**20)))


@contextmanager
def mmapped(mb: int):
    """Within the block, tensors of `mb` MB and more are mmapped; after it, the threshold is glibc's ceiling (32
    MB). mb <= 0: nothing changes."""
    changed = set_mmap_threshold(mb)
    try:
        yield
    finally:
        if changed:
            set_mmap_threshold(GLIBC_MAX_MB)
