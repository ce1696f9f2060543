# Copyright (c) muscle_mm contributors. All rights reserved.
"""Pairs of images whose hashes match: exact (same content hash) and near
(perceptual hashes within a Hamming distance).

Comparing all pairs of ~180k hashes is 1.6e10 comparisons, so near pairs
come from a multi-index search: the hash's 64-bit words are cut into ``m``
bands, and two hashes within distance ``T`` differ in at most ``T // m``
bits of at least one band (pigeonhole), so only pairs whose band values
are that close are compared. ``m`` is chosen by a cost estimate (lookups
plus the expected candidates of uniform hashes); :func:`near_pairs_brute`
is the reference the tests check it against.
"""
from collections import defaultdict
from itertools import combinations
from math import comb
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .hashing import BITS, FLIP_MASK, WORDS, hamming, popcount, to_words

_CHUNK = 1 << 20  # candidate pairs compared at a time (memory bound)
#: bits held by each word of a hash
WORD_BITS = [min(64, BITS - 64 * w) for w in range(WORDS)]


def exact_groups(content: Sequence[str]) -> List[List[int]]:
    """Indices sharing a content hash, groups of two or more."""
    groups: Dict[str, List[int]] = defaultdict(list)
    for i, h in enumerate(content):
        groups[h].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _split(k: int) -> List[Tuple[int, int, int]]:
    """``(word, first bit, width)`` of ``k`` bands per word."""
    bands = []
    for w, bits in enumerate(WORD_BITS):
        widths = [bits // k + (j < bits % k) for j in range(k)]
        starts = np.cumsum([0] + widths[:-1]).tolist()
        bands += [(w, s, width) for s, width in zip(starts, widths)]
    return bands


def plan_bands(threshold: int,
               n: int) -> Tuple[List[Tuple[int, int, int]], int]:
    """``([(word, first bit, width)] of each band, radius searched per
    band)``: the plan of least estimated cost."""
    best = None
    for k in range(1, 33):
        bands = _split(k)
        r = threshold // len(bands)
        probes = [sum(comb(w, j) for j in range(r + 1)) for *_, w in bands]
        if max(probes) > 1e5:
            continue
        # lookups + expected candidates of uniform hashes (2n: + mirrors)
        cost = sum(p * (n + 2.0 * n * n / 2.0**w)
                   for p, (*_, w) in zip(probes, bands))
        if best is None or cost < best[0]:
            best = (cost, bands, r)
    return best[1], best[2]


def _probes(width: int, radius: int) -> List[int]:
    """Every ``width``-bit mask with at most ``radius`` bits set."""
    return [
        sum(1 << b for b in bits) for k in range(radius + 1)
        for bits in combinations(range(width), k)
    ]


def _as_words(hashes) -> np.ndarray:
    if isinstance(hashes, np.ndarray) and hashes.ndim == 2:
        return hashes.astype(np.uint64)
    return to_words(hashes)


def near_pairs(hashes, threshold: int, flip: bool = True) -> np.ndarray:
    """Pairs ``i < j`` with ``hamming(h_i, h_j) <= threshold``.

    Args:
        hashes: Perceptual hashes (ints) or their ``to_words`` array.
        threshold: Largest Hamming distance.
        flip: Also match a mirror: the distance is the smaller one to
            ``h_j`` and to ``h_j ^ FLIP_MASK``.

    Returns:
        ``(k, 4)`` int64 rows ``i, j, distance, mirrored`` (1 where the
        mirror was nearer), sorted.
    """
    h = _as_words(hashes)
    n = len(h)
    if n < 2:
        return np.zeros((0, 4), np.int64)
    index = np.concatenate([h, h ^ to_words([FLIP_MASK])]) if flip else h
    ids = np.tile(np.arange(n), 2 if flip else 1)
    mirrored = np.repeat([0, 1], n) if flip else np.zeros(n, np.int64)
    found = []
    bands, radius = plan_bands(threshold, n)
    for word, start, width in bands:
        mask = np.uint64((1 << width) - 1)
        vals = (index[:, word] >> np.uint64(start)) & mask
        order = np.argsort(vals, kind='stable')
        sorted_vals = vals[order]
        queries = (h[:, word] >> np.uint64(start)) & mask
        for probe in _probes(width, radius):
            q = queries ^ np.uint64(probe)
            lo = np.searchsorted(sorted_vals, q, 'left')
            counts = np.searchsorted(sorted_vals, q, 'right') - lo
            found += _compare(h, index, ids, mirrored, order, lo, counts,
                              threshold)
    if not found:
        return np.zeros((0, 4), np.int64)
    pairs = np.concatenate(found)
    # one row per (i, j): the smaller distance, the direct match on ties
    pairs = pairs[np.lexsort((pairs[:, 3], pairs[:, 2], pairs[:, 1],
                              pairs[:, 0]))]
    first = np.ones(len(pairs), bool)
    first[1:] = (pairs[1:, :2] != pairs[:-1, :2]).any(1)
    return pairs[first]


def _compare(h, index, ids, mirrored, order, lo, counts, threshold):
    """Compare every query with its candidates, ``_CHUNK`` at a time."""
    out = []
    ends = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = ends[start - 1] if start else 0
        stop = max(start + 1,
                   int(np.searchsorted(ends, base + _CHUNK, 'right')))
        cnt = counts[start:stop]
        total = int(cnt.sum())
        if total:
            a = np.repeat(np.arange(start, stop), cnt)
            offsets = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            b = order[np.repeat(lo[start:stop], cnt) + offsets]
            keep = ids[b] > a  # each unordered pair once, never itself
            a, b = a[keep], b[keep]
            d = popcount(h[a] ^ index[b]).sum(-1)
            ok = d <= threshold
            if ok.any():
                out.append(
                    np.stack([a[ok], ids[b[ok]], d[ok], mirrored[b[ok]]],
                             1).astype(np.int64))
        start = stop
    return out


def near_pairs_brute(hashes, threshold: int, flip: bool = True) -> np.ndarray:
    """All-pairs reference of :func:`near_pairs` (``(k, 3)``: i, j, d)."""
    h = _as_words(hashes)
    d = hamming(h[:, None], h[None, :], flip)
    i, j = np.nonzero(np.triu(d <= threshold, 1))
    return np.stack([i, j, d[i, j]], 1).astype(np.int64)
