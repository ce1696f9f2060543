# Copyright (c) muscle_mm contributors. All rights reserved.
"""Hashes of radiographs for the leakage audit, and their on-disk cache.

Two hashes per image, both of the pixels as :class:`LoadXrayImage` decodes
them (grey, 8/16-bit PNG, JPEG or DICOM onto 0-255), so the audit sees what
training sees:

* :func:`content_hash`: SHA-1 of the decoded grey pixels and their shape;
  equal for a lossless re-encode (PNG <-> PNG, grey saved as RGB).
* :func:`perceptual_hash`: 255 sign bits of the 16x16 lowest frequencies
  of the DCT of a 64x64 downscale (DC left out; the layout of imagehash's
  ``phash(hash_size=16)``). It survives JPEG re-encoding and resizing, and
  any positive linear grey-level change leaves it unchanged (8 vs 16 bit,
  linear contrast stretch: an AC coefficient's sign does not change under
  ``a * x + b``, ``a > 0``). A left-right flip multiplies the coefficient
  of horizontal frequency ``u`` by ``(-1) ** u``, so the mirrored image's
  hash is the hash XOR :data:`FLIP_MASK`: the pair finder compares both
  without a second DCT. The 64-bit hash of an 8x8 block (32x32 downscale)
  was tried first: on the demo's phantoms, distinct images came as close
  as the planted copies (README, "Leakage audit").

The bits are stored in a fixed pseudo-random order (:data:`BIT_POSITION`),
so every band of the pair finder's multi-index mixes low and high
frequencies rather than holding the low ones, which most radiographs share.
"""
import fcntl
import hashlib
import json
import os
import os.path as osp
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from muscle_mm.datasets.transforms.loading import LoadXrayImage
from muscle_mm.utils.fileio import atomic_write

HASH_SIZE = 64  # side of the downscale the DCT runs on
LOW = 16  # the LOW x LOW lowest frequencies give the bits (DC left out)
BITS = LOW * LOW - 1
WORDS = (BITS + 63) // 64  # uint64 words of a hash (pairs.py)
CACHE_NAME = 'hash_cache.json'
#: what the cache's hashes are; a cache of another kind is not reused
HASH_KIND = f'sha1-grey+dct{HASH_SIZE}-sign{BITS}-v1'

# coefficient k <-> (v, u) = _COEFS[k] (v vertical, u horizontal frequency)
_COEFS = [(v, u) for v in range(LOW) for u in range(LOW) if (v, u) != (0, 0)]
_V = np.array([v for v, _ in _COEFS])
_U = np.array([u for _, u in _COEFS])
#: bit position of coefficient k in the hash (fixed, seeded permutation)
BIT_POSITION = np.random.default_rng(2026).permutation(BITS)
#: the bits a left-right flip inverts (odd horizontal frequency)
FLIP_MASK = int(sum(1 << int(p) for p, u in zip(BIT_POSITION, _U) if u % 2))

_LOADER = LoadXrayImage(to_channels=1, to_float32=True)


def decode_grey(path: str) -> np.ndarray:
    """The image as training decodes it: one float32 grey channel on 0-255
    (``LoadXrayImage(to_channels=1, to_float32=True)``)."""
    return _LOADER.transform(dict(img_path=path))['img']


def content_hash(img: np.ndarray) -> str:
    """SHA-1 hex digest of the pixels (as float32) and their shape."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    digest = hashlib.sha1(repr(img.shape).encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def perceptual_hash(img: np.ndarray) -> int:
    """255-bit DCT-sign hash of a grey image (any size, any grey range)."""
    small = cv2.resize(
        np.asarray(img, dtype=np.float32), (HASH_SIZE, HASH_SIZE),
        interpolation=cv2.INTER_AREA)
    coefs = cv2.dct(small - small.mean())
    bits = np.zeros(8 * (BITS // 8 + 1), bool)
    bits[BIT_POSITION[coefs[_V, _U] > 0]] = True
    return int.from_bytes(
        np.packbits(bits, bitorder='little').tobytes(), 'little')


def to_words(hashes: Sequence[int]) -> np.ndarray:
    """``(n, WORDS)`` uint64 of hashes (word ``w`` holds bits
    ``64 w .. 64 w + 63``)."""
    mask = (1 << 64) - 1
    return np.array([[(h >> (64 * w)) & mask for w in range(WORDS)]
                     for h in hashes],
                    dtype=np.uint64).reshape(-1, WORDS)


def hash_file(path: str) -> Tuple[str, int]:
    """``(content_hash, perceptual_hash)`` of one image file."""
    img = decode_grey(path)
    return content_hash(img), perceptual_hash(img)


def _stat_key(path: str) -> Tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


class HashCache:
    """Hashes of image files, reused while a file's size and mtime stay.

    Stored as JSON (``{path: [size, mtime_ns, content, perceptual]}``, the
    path absolute, the perceptual hash in hex) in
    ``cache_dir/hash_cache.json``, so a second audit of ~180k images stats
    them and decodes none. An entry says nothing of splits or protocol, so
    audits of other work dirs (the paper and official tracks, an
    ``--exclude-leaks`` study) can share one cache. :meth:`save` merges
    into what is on disk under an ``flock`` and writes atomically: audits
    hashing at once into one cache lose no entry and never leave it
    partial.
    """

    def __init__(self, cache_dir: str) -> None:
        self.path = osp.join(cache_dir, CACHE_NAME)
        self.entries: Dict[str, list] = self._read()
        self._new: Dict[str, list] = {}  # put since the last save

    def _read(self) -> Dict[str, list]:
        if not osp.isfile(self.path):
            return {}
        try:
            with open(self.path) as f:
                data = json.load(f)
        except ValueError:
            return {}  # a damaged cache is rebuilt, never trusted
        if not isinstance(data, dict) or data.get('kind') != HASH_KIND:
            return {}
        return data.get('entries', {})

    def get(self, path: str) -> Optional[Tuple[str, int]]:
        """The cached hashes if the file is unchanged, else None."""
        entry = self.entries.get(path)
        try:
            if entry is None or tuple(entry[:2]) != _stat_key(path):
                return None
        except OSError:  # gone: hash_images reports it
            return None
        return entry[2], int(entry[3], 16)

    def put(self, path: str, hashes: Tuple[str, int]) -> None:
        entry = [*_stat_key(path), hashes[0], f'{hashes[1]:x}']
        self.entries[path] = self._new[path] = entry

    def save(self) -> None:
        """Write the entries put here over the cache on disk (which another
        audit may have saved to since this one read it)."""
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        with open(self.path + '.lock', 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed
            self.entries = {**self._read(), **self._new}
            atomic_write(
                json.dumps(dict(kind=HASH_KIND, entries=self.entries)),
                self.path)
        self._new = {}


def _hash_one(path: str):
    try:
        return path, hash_file(path), None
    except (OSError, ValueError) as err:
        return path, None, f'{type(err).__name__}: {err}'


def hash_images(paths: Sequence[str],
                cache: HashCache,
                workers: int = 1,
                save_every: int = 5000,
                progress: Optional[Callable[[int, int], None]] = None
                ) -> Tuple[Dict[str, Tuple[str, int]], Dict[str, str], int]:
    """Hash ``paths`` (absolute), decoding only those not in ``cache``.

    Returns ``(hashes, errors, decoded)``: path -> hashes, path -> why it
    could not be decoded, and how many files were decoded this time. The
    cache is saved every ``save_every`` new hashes and at the end, so an
    interrupted audit keeps its work. ``workers > 1`` decodes in a process
    pool.
    """
    hashes, errors, todo = {}, {}, []
    for path in dict.fromkeys(paths):
        cached = cache.get(path)
        if cached is None:
            todo.append(path)
        else:
            hashes[path] = cached
    if todo:
        if workers > 1:
            from multiprocessing import get_context
            pool = get_context('fork').Pool(workers)
            results = pool.imap_unordered(_hash_one, todo, chunksize=16)
        else:
            pool, results = None, map(_hash_one, todo)
        try:
            for i, (path, value, err) in enumerate(results, 1):
                if err is not None:
                    errors[path] = err
                else:
                    hashes[path] = value
                    cache.put(path, value)
                if i % save_every == 0:
                    cache.save()
                if progress is not None:
                    progress(i, len(todo))
        finally:
            if pool is not None:
                pool.terminate()
        cache.save()
    return hashes, errors, len(todo)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy's ``bitwise_count`` where it has it)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, 'bitwise_count'):
        return np.bitwise_count(x).astype(np.int64)
    table = np.array([bin(i).count('1') for i in range(256)], np.int64)
    return table[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1)


def hamming(a: np.ndarray, b: np.ndarray, flip: bool = True) -> np.ndarray:
    """Hamming distance of hashes as ``to_words`` arrays (last axis the
    words); with ``flip``, the smaller of the distance to ``b`` and to
    ``b``'s left-right mirror."""
    a, b = np.asarray(a, np.uint64), np.asarray(b, np.uint64)
    d = popcount(a ^ b).sum(-1)
    if flip:
        d = np.minimum(d, popcount(a ^ b ^ to_words([FLIP_MASK])[0]).sum(-1))
    return d
