"""Batches and FIFO stock of packs, held as ranges of pack indexes (never one row per pack).

A product's packs are numbered 0, 1, 2 … in production order; a batch is a contiguous range and
its cases are consecutive runs of ``case_size`` packs. Stock at a site is a FIFO of
``[start, end)`` ranges that never cross a batch, so taking, shipping and dispensing ``n`` packs
costs O(ranges touched), and a code string is built only when an event names the pack.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import date

import numpy as np

Span = tuple[int, int]


@dataclass
class Batch:
    """One production batch (批号) of a product."""

    index: int
    lot: str
    start: int  # first pack index
    n: int  # packs (a multiple of the case size)
    case_size: int
    case_start: int  # first case index
    serials: np.ndarray  # int64 serial per pack
    case_serials: np.ndarray  # int64 serial per case
    produced: date
    expiry: date
    day: int  # simulation day of production
    case_open: np.ndarray = field(init=False)
    serial_list: list[int] = field(init=False, repr=False)
    end: int = field(init=False)  # one past the last pack index

    def __post_init__(self) -> None:
        self.case_open = np.zeros(len(self.case_serials), dtype=bool)
        self.serial_list = self.serials.tolist()
        self.end = self.start + self.n


class ProductPacks:
    """The batches of one product and lookups from pack index to batch and case."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self._starts: list[int] = []
        self._issued: list[np.ndarray] = []  # sorted chunks of the serials issued so far
        self.next_pack = 0
        self.next_case = 0

    def add(self, batch: Batch) -> None:
        """Register a new batch (its packs follow the previous batch's)."""
        self.batches.append(batch)
        self._starts.append(batch.start)
        self._issued.append(np.sort(batch.serials))
        if len(self._issued) > 16:  # merge now and then so lookups stay cheap
            self._issued = [np.sort(np.concatenate(self._issued))]
        self.next_pack = batch.end
        self.next_case = batch.case_start + len(batch.case_serials)

    def batch_of(self, pack: int) -> Batch:
        """The batch a pack index belongs to."""
        return self.batches[bisect_right(self._starts, pack) - 1]

    def was_issued(self, serials: np.ndarray) -> np.ndarray:
        """Which of these serials were already issued for this product."""
        hit = np.zeros(len(serials), dtype=bool)
        for chunk in self._issued:
            pos = np.minimum(np.searchsorted(chunk, serials), len(chunk) - 1)
            hit |= chunk[pos] == serials
        return hit

    def fresh_serials(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random 13-digit serials never issued for this product (unguessable, unique)."""
        out = rng.integers(10**12, 10**13, size=n, dtype=np.int64)
        while True:
            _, first = np.unique(out, return_index=True)
            clash = self.was_issued(out)
            clash[np.setdiff1d(np.arange(n), first)] = True
            if not clash.any():
                return out
            out[clash] = rng.integers(10**12, 10**13, size=int(clash.sum()), dtype=np.int64)


class Fifo:
    """FIFO stock of one product at one site as pack-index ranges."""

    __slots__ = ("qty", "spans")

    def __init__(self) -> None:
        self.spans: deque[list[int]] = deque()
        self.qty = 0

    def put(self, spans: list[Span]) -> None:
        """Add ranges at the back."""
        for s, e in spans:
            if e > s:
                self.spans.append([s, e])
                self.qty += e - s

    def take(self, n: int) -> list[Span]:
        """Remove up to ``n`` packs from the front."""
        out: list[Span] = []
        spans = self.spans
        while n > 0 and spans:
            head = spans[0]
            k = min(n, head[1] - head[0])
            out.append((head[0], head[0] + k))
            head[0] += k
            n -= k
            self.qty -= k
            if head[0] == head[1]:
                spans.popleft()
        return out

    def take_last(self) -> int | None:
        """Remove the most recently received pack (used for off-book diversion)."""
        if not self.spans:
            return None
        tail = self.spans[-1]
        tail[1] -= 1
        self.qty -= 1
        pack = tail[1]
        if tail[0] == tail[1]:
            self.spans.pop()
        return pack

    def remove_range(self, lo: int, hi: int) -> list[Span]:
        """Remove every pack with index in ``[lo, hi)`` (e.g. a recalled batch)."""
        out: list[Span] = []
        kept: deque[list[int]] = deque()
        for s, e in self.spans:
            a, b = max(s, lo), min(e, hi)
            if a >= b:
                kept.append([s, e])
                continue
            out.append((a, b))
            if s < a:
                kept.append([s, a])
            if b < e:
                kept.append([b, e])
        self.spans = kept
        self.qty -= sum(b - a for a, b in out)
        return out

    def remove_where(self, packs: ProductPacks, expiring_before: date) -> list[Span]:
        """Remove ranges of batches that expire before the given date."""
        out: list[Span] = []
        kept: deque[list[int]] = deque()
        for s, e in self.spans:
            if packs.batch_of(s).expiry < expiring_before:
                out.append((s, e))
                self.qty -= e - s
            else:
                kept.append([s, e])
        self.spans = kept
        return out


def pack_indexes(spans: list[Span]) -> np.ndarray:
    """All pack indexes of some ranges, in order."""
    if len(spans) == 1:
        return np.arange(spans[0][0], spans[0][1], dtype=np.int64)
    return np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in spans])
