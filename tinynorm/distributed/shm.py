"""The multiprocessing backend: ranks on one machine exchanging through shared memory.

One shared block holds, per rank, an arrival counter (on its own cache line),
a payload slot and a header; slots are double-buffered by the parity of the
exchange number. Exchange k on rank r:

1. copy the payload into slot[k % 2][r] and its size into size[k % 2][r];
2. publish counter[r] = k (after a fence);
3. spin until every counter >= k, checking an abort word and a deadline;
4. read every rank's slot[k % 2].

Slot k % 2 is written again only at exchange k + 2, which no rank can start
before every rank has published k + 1, i.e. finished reading exchange k; so
one wait per exchange suffices. A rank that raises, dies or times out sets the
abort word (the launcher does it for a rank that died), and every waiting rank
raises :class:`PeerFailure` naming it instead of hanging. Payloads larger than
a slot travel in several exchanges.
"""
import os
import time

import numpy as np

from .base import Communicator, ExchangeMismatch, ExchangeTimeout, PeerFailure
from .flags import first_behind, publish

LINE = 8                 # int64 words per 64-byte cache line
HEADER_BYTES = 128
MESSAGE_BYTES = 512
SPINS = 20000            # polls between two checks of abort and deadline
DEFAULT_SLOT_BYTES = 1 << 20

RUNNING, DONE, FAILED, DIED = 0, 1, 2, 3
_EMPTY = np.empty(0, np.uint8)


class Layout:
    """Offsets of the parts of the shared block, from (world_size, slot_bytes)."""

    def __init__(self, world_size, slot_bytes):
        self.world_size, self.slot_bytes = world_size, slot_bytes
        w = world_size
        self.abort = w * LINE
        self.status = (w + 1) * LINE
        self.sizes = self.status + w
        self.ctrl_words = self.sizes + 2 * w
        self.messages = 8 * self.ctrl_words
        self.headers = self.messages + w * MESSAGE_BYTES
        self.data = self.headers + 2 * w * HEADER_BYTES
        self.data = (self.data + 63) // 64 * 64
        self.total = self.data + 2 * w * slot_bytes


def create_shared_block(ctx, world_size, slot_bytes=DEFAULT_SLOT_BYTES):
    """Allocate the zeroed shared block (a multiprocessing RawArray) that workers attach to."""
    return ctx.RawArray("b", Layout(world_size, slot_bytes).total)


class SharedBlock:
    """NumPy views on the shared block."""

    def __init__(self, raw, world_size, slot_bytes):
        self.layout = lay = Layout(world_size, slot_bytes)
        buf = np.frombuffer(raw, dtype=np.uint8)
        if buf.size < lay.total:
            raise ValueError(f"shared block has {buf.size} bytes, {lay.total} needed")
        self.raw = raw
        self.ctrl = buf[:8 * lay.ctrl_words].view(np.int64)
        self.messages = buf[lay.messages:lay.headers].reshape(world_size, MESSAGE_BYTES)
        self.headers = buf[lay.headers:lay.headers + 2 * world_size * HEADER_BYTES].reshape(
            2, world_size, HEADER_BYTES)
        self.data = buf[lay.data:lay.total].reshape(2, world_size, slot_bytes)

    def status(self, rank):
        return int(self.ctrl[self.layout.status + rank])

    def mark_failed(self, rank, message, state=FAILED):
        """Record why ``rank`` stopped and wake every waiting rank (first failure wins the abort word)."""
        text = message.encode("utf-8", "replace")[:MESSAGE_BYTES - 1]
        self.messages[rank, :] = 0
        self.messages[rank, :len(text)] = np.frombuffer(text, dtype=np.uint8)
        self.ctrl[self.layout.status + rank] = state
        if self.ctrl[self.layout.abort] == 0:
            publish(self.ctrl, self.layout.abort, rank + 1)

    def message(self, rank):
        return bytes(self.messages[rank]).rstrip(b"\0").decode("utf-8", "replace")

    def failure(self):
        """(rank, message) of the rank that set the abort word, or None."""
        a = int(self.ctrl[self.layout.abort])
        if a == 0:
            return None
        return a - 1, self.message(a - 1)


class SharedMemoryCommunicator(Communicator):
    """Rank ``rank`` of ``world_size`` processes sharing ``raw`` (see the module docstring).

    ``timeout`` (seconds) bounds every wait; ``debug`` makes every exchange
    carry a header (tag, collective, shape, dtype) that all ranks compare.
    """

    backend = "multiprocessing"

    def __init__(self, raw, rank, world_size, slot_bytes=DEFAULT_SLOT_BYTES, timeout=60.0,
                 debug=False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.block = SharedBlock(raw, world_size, slot_bytes)
        self.rank, self.world_size = rank, world_size
        self.slot_bytes, self.timeout, self.debug = slot_bytes, float(timeout), bool(debug)
        self.exchanges = 0
        self._slots = [[self.block.data[p, q] for q in range(world_size)] for p in range(2)]
        self._closed = False

    # ---- one exchange ----------------------------------------------------------
    def _exchange(self, chunk, total, what, array, tag, write=True):
        """Publish ``chunk`` (uint8) as this rank's part of the next exchange; return its parity.

        ``what`` names the collective; with ``array`` it describes the
        exchange in error messages and debug headers.
        """
        if self._closed:
            raise ValueError("communicator is closed")
        b, lay = self.block, self.block.layout
        k = self.exchanges + 1
        self.exchanges = k
        p = k & 1
        r, w = self.rank, self.world_size
        if write and chunk.size:
            self._slots[p][r][:chunk.size] = chunk
        b.ctrl[lay.sizes + p * w + r] = total
        if self.debug:
            head = self._describe(what, array, tag).encode("utf-8", "replace")[:HEADER_BYTES - 1]
            b.headers[p, r, :] = 0
            b.headers[p, r, :len(head)] = np.frombuffer(head, dtype=np.uint8)
        publish(b.ctrl, r * LINE, k)
        self._wait(k, what, array, tag)
        sizes = b.ctrl[lay.sizes + p * w:lay.sizes + (p + 1) * w]
        if (sizes != total).any():
            parts = ", ".join(f"rank {q}: {int(s)} bytes" for q, s in enumerate(sizes))
            raise ExchangeMismatch(f"exchange {k} ({self._describe(what, array, tag)}) got "
                                   f"payloads of different sizes: {parts}")
        if self.debug:
            heads = [bytes(b.headers[p, q]).rstrip(b"\0").decode() for q in range(w)]
            if len(set(heads)) > 1:
                parts = "; ".join(f"rank {q} at {h!r}" for q, h in enumerate(heads))
                raise ExchangeMismatch(f"ranks disagree at exchange {k}: {parts}")
        return p

    @staticmethod
    def _describe(what, array, tag):
        shape = "" if array is None else f" {array.shape} {array.dtype}"
        return f"{tag or '?'} | {what}{shape}"

    def _wait(self, k, what, array, tag):
        b = self.block
        lag = first_behind(b.ctrl, LINE, self.world_size, k, SPINS)
        if lag < 0:
            return
        start = time.monotonic()
        deadline = start + self.timeout
        while True:
            fail = b.failure()
            if fail is not None and fail[0] != self.rank:
                raise PeerFailure(f"rank {fail[0]} failed while rank {self.rank} waited at exchange "
                                  f"{k} ({self._describe(what, array, tag)}): {fail[1]}",
                                  rank=fail[0])
            now = time.monotonic()
            if now > deadline:
                behind = [q for q in range(self.world_size)
                          if int(b.ctrl[q * LINE]) < k]
                names = ", ".join(map(str, behind))
                raise ExchangeTimeout(
                    f"rank {self.rank} waited {self.timeout:g} s at exchange {k} "
                    f"({self._describe(what, array, tag)}); rank(s) {names} never arrived",
                    ranks=behind)
            if now - start < 0.002:
                os.sched_yield()
            else:
                time.sleep(0.0002)
            lag = first_behind(b.ctrl, LINE, self.world_size, k, SPINS // 10)
            if lag < 0:
                return

    # ---- collectives -------------------------------------------------------------
    def allgather(self, array, tag=None):
        a = np.ascontiguousarray(array)
        w = self.world_size
        out = np.empty((w,) + a.shape, dtype=a.dtype)
        src = a.reshape(-1).view(np.uint8)
        dst = out.reshape(w, -1).view(np.uint8)
        n = src.size
        if n <= self.slot_bytes:
            p = self._exchange(src, n, "allgather", a, tag)
            dst[...] = self.block.data[p, :, :n]
            return out
        for off in range(0, n, self.slot_bytes):
            chunk = src[off:off + self.slot_bytes]
            p = self._exchange(chunk, n, "allgather", a, tag)
            dst[:, off:off + chunk.size] = self.block.data[p, :, :chunk.size]
        return out

    def broadcast(self, array, src=0, tag=None):
        self._check_src(src)
        a = np.ascontiguousarray(array)
        out = np.empty_like(a)
        data = a.reshape(-1).view(np.uint8)
        dst = out.reshape(-1).view(np.uint8)
        what = f"broadcast from {src}"
        for off in range(0, max(data.size, 1), self.slot_bytes):
            chunk = data[off:off + self.slot_bytes]
            p = self._exchange(chunk, data.size, what, a, tag, write=self.rank == src)
            dst[off:off + chunk.size] = self._slots[p][src][:chunk.size]
        return out

    def barrier(self, tag=None):
        self._exchange(_EMPTY, 0, "barrier", None, tag)

    def close(self):
        self._closed = True
