# Copyright (c) muscle_mm contributors. All rights reserved.
"""The leakage audit: which radiographs occur twice across the nine
datasets and their splits (``tools/misc/audit_overlap.py``).

Images are listed by the readers, as the study uses them: every image of a
stage-1-only dataset (group ``nih/all``, ...) and the train/val/test splits
of the four task datasets (``pneumonia/test``, ...; images of a release in
none of its splits, e.g. TBX11K's healthy ones, are used by no stage and
left out). Stage 1 (MD-MoCo) pre-trains on the ``*/all`` groups and the
task ``*/train`` splits; an image of those that has a copy in a task's
val/test split is a leak, listed by :func:`stage1_exclusions` for
``MultiSourceXrayDataset(exclude_file=...)``.
"""
import csv
import io
import json
import os.path as osp
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from muscle_mm.datasets.readers.base import (SPLITS, TABLE1,
                                             default_protocol)
from muscle_mm.registry import DATASETS
from .hashing import HashCache, hash_images
from .pairs import exact_groups, near_pairs

#: Hamming distance (of 255 bits) at or under which two images are the same
#: radiograph; precision 1 and recall 1 on the demo's planted copies
#: (README, "Leakage audit").
DEFAULT_THRESHOLD = 6
HELD_OUT = ('val', 'test')
STAGE1_ONLY = 'all'  # the group name of a stage-1-only dataset's images
PLANTED = 'planted_copies.json'  # the demo generator's manifest
CSV_COLUMNS = ('kind', 'distance', 'mirrored', 'group_a', 'image_a',
               'group_b', 'image_b')


def is_stage1(group: str) -> bool:
    """In the MD-MoCo union: a stage-1-only dataset or a task's train."""
    return group.split('/')[1] in (STAGE1_ONLY, 'train')


def is_held_out(group: str) -> bool:
    return group.split('/')[1] in HELD_OUT


def list_images(data_root: str,
                datasets: Optional[Sequence[str]] = None,
                log: Callable[[str], None] = print,
                protocol: Optional[str] = None) -> List[Tuple[str, str]]:
    """``(group, absolute path)`` of every image the study uses, in
    :data:`TABLE1` order, the task splits those of ``protocol`` (the
    readers' default when None); a dataset folder that is missing is
    skipped with a message, a task dataset without split files is an error
    (the reader's, naming ``make_splits.py``)."""
    import muscle_mm.datasets.readers  # noqa: F401 - registers the readers
    if not osp.isdir(data_root):
        raise FileNotFoundError(
            f'data root {data_root} is not a folder; expected the folder '
            f'holding the datasets as distributed ({TABLE1["nih"]["folder"]}'
            f'/, {TABLE1["pneumonia"]["folder"]}/, ...)')
    images = []
    for key in datasets or TABLE1:
        info = TABLE1[key]
        root = osp.join(data_root, info['folder'])
        if not osp.isdir(root):
            log(f'{key}: {root} not found, left out of the audit')
            continue
        has_splits = DATASETS.get(info['type']).HAS_SPLITS
        for split in SPLITS if has_splits else ('train', ):
            ds = DATASETS.build(
                dict(
                    type=info['type'],
                    data_root=root,
                    split=split,
                    protocol=protocol,
                    lazy_init=False,
                    serialize_data=False))
            group = f'{key}/{split if has_splits else STAGE1_ONLY}'
            images += [(group, osp.abspath(ds.get_data_info(i)['img_path']))
                       for i in range(len(ds))]
    if not images:
        raise FileNotFoundError(
            f'no dataset of Table 1 found under {data_root}; expected e.g. '
            f'{osp.join(data_root, TABLE1["nih"]["folder"])}')
    return images


@dataclass
class Audit:
    """The images, their hashes and the matching pairs of one audit.

    ``pairs`` rows: ``(a, b, distance, mirrored, exact)``, indices into
    ``images`` with ``a < b``; ``distance`` is the perceptual hashes'
    Hamming distance (0 for exact copies). ``protocol``: whose task splits
    the groups are (``'paper'`` or ``'official'``).
    """
    data_root: str
    protocol: str
    threshold: int
    images: List[Tuple[str, str]]
    content: List[str]
    phash: List[int]
    pairs: np.ndarray
    errors: Dict[str, str] = field(default_factory=dict)
    decoded: int = 0
    cached: int = 0

    def rel(self, i: int) -> str:
        """Image ``i``'s path relative to the data root (posix)."""
        return osp.relpath(self.images[i][1],
                           osp.abspath(self.data_root)).replace('\\', '/')

    def group(self, i: int) -> str:
        return self.images[i][0]

    def within(self, threshold: int) -> np.ndarray:
        """The pairs at ``threshold`` or closer (exact ones always)."""
        p = self.pairs
        return p[(p[:, 2] <= threshold) | (p[:, 4] == 1)]


def find_pairs(content: Sequence[str], phash: Sequence[int],
               threshold: int) -> np.ndarray:
    """Exact pairs (same content hash, by dict) and near pairs (perceptual
    hashes within ``threshold``, by :func:`near_pairs`), one row each:
    ``a, b, distance, mirrored, exact``."""
    rows = {}
    near = near_pairs(phash, threshold)
    for a, b, d, m in near.tolist():
        rows[a, b] = [a, b, d, m, int(content[a] == content[b])]
    for group in exact_groups(content):
        for x, a in enumerate(group):
            for b in group[x + 1:]:
                rows.setdefault((a, b), [a, b, 0, 0, 1])[4] = 1
    if not rows:
        return np.zeros((0, 5), np.int64)
    return np.array(sorted(rows.values()), np.int64)


def run_audit(data_root: str,
              cache_dir: str,
              threshold: int = DEFAULT_THRESHOLD,
              workers: int = 1,
              datasets: Optional[Sequence[str]] = None,
              search: Optional[int] = None,
              log: Callable[[str], None] = print,
              protocol: Optional[str] = None) -> Audit:
    """List (the task splits of ``protocol``, default the readers'), hash
    (cached in ``cache_dir``) and pair the images; pairs up to distance
    ``search`` (default ``threshold``) are kept, for
    :func:`planted_scores` at other thresholds."""
    if threshold < 0:
        raise ValueError(f'threshold must be >= 0, got {threshold}')
    search = max(threshold, search or 0)
    protocol = default_protocol(protocol)
    images = list_images(data_root, datasets, log, protocol)
    cache = HashCache(cache_dir)
    def progress(done: int, total: int) -> None:
        if done % 5000 == 0 or done == total:
            log(f'hashed {done} of {total} new image(s)')

    hashes, errors, decoded = hash_images([p for _, p in images], cache,
                                          workers, progress=progress)
    for path, why in errors.items():
        log(f'cannot hash {path}: {why}')
    unique = len({p for _, p in images})
    images = [(g, p) for g, p in images if p in hashes]
    content = [hashes[p][0] for _, p in images]
    phash = [hashes[p][1] for _, p in images]
    return Audit(data_root, protocol, threshold, images, content, phash,
                 find_pairs(content, phash, search), errors, decoded,
                 unique - decoded)


# ----------------------------------------------------------------- output
def group_order(audit: Audit) -> List[str]:
    """Groups in Table 1 order, splits train/val/test."""
    rank = {k: i for i, k in enumerate(TABLE1)}
    split_rank = {s: i for i, s in enumerate((STAGE1_ONLY, ) + SPLITS)}
    groups = {g for g, _ in audit.images}
    return sorted(groups, key=lambda g: (rank[g.split('/')[0]],
                                         split_rank[g.split('/')[1]]))


def pair_matrix(audit: Audit,
                threshold: Optional[int] = None) -> Dict[Tuple[str, str],
                                                         int]:
    """``{(group a, group b): pairs}``, each unordered cell once (in
    :func:`group_order`)."""
    order = {g: i for i, g in enumerate(group_order(audit))}
    pairs = audit.within(audit.threshold if threshold is None else threshold)
    cells: Counter = Counter()
    for a, b in pairs[:, :2].tolist():
        ga, gb = sorted((audit.group(a), audit.group(b)), key=order.get)
        cells[ga, gb] += 1
    return dict(cells)


def format_matrix(audit: Audit, cells: Dict[Tuple[str, str], int]) -> str:
    """The symmetric group x group table of pair counts, columns numbered
    as the rows (``.`` for none)."""
    groups = group_order(audit)
    sizes = Counter(g for g, _ in audit.images)
    width = max(len(g) for g in groups) + 8
    head = ' ' * (width + 4) + ''.join(f'{i + 1:>5}'
                                       for i in range(len(groups)))
    lines = [head]
    for i, gi in enumerate(groups):
        row = [
            cells.get((gi, gj), cells.get((gj, gi), 0))
            for gj in groups
        ]
        label = f'{gi} ({sizes[gi]})'
        lines.append(f'{i + 1:>3} {label:<{width}}' +
                     ''.join(f'{c if c else ".":>5}' for c in row))
    return '\n'.join(lines)


def pairs_csv(audit: Audit) -> str:
    """The pairs as CSV (:data:`CSV_COLUMNS`), closest first."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(CSV_COLUMNS)
    pairs = audit.within(audit.threshold)
    for a, b, d, m, exact in sorted(pairs.tolist(),
                                    key=lambda r: (-r[4], r[2], r[0], r[1])):
        writer.writerow([
            'exact' if exact else 'near', d, m,
            audit.group(a), audit.rel(a),
            audit.group(b), audit.rel(b)
        ])
    return buf.getvalue()


def stage1_exclusions(audit: Audit) -> List[str]:
    """Stage-1 images (relative to the data root) that have a copy in a
    task's val or test split: what the leak-free stage 1 leaves out."""
    out = set()
    for a, b in audit.within(audit.threshold)[:, :2].tolist():
        for x, y in ((a, b), (b, a)):
            if is_stage1(audit.group(x)) and is_held_out(audit.group(y)):
                out.add(audit.rel(x))
    return sorted(out)


def leakage(audit: Audit) -> dict:
    """The audit's leakage figures: stage-1 images with a copy in a
    held-out split, and per held-out split the images with a stage-1
    copy."""
    held: Dict[str, set] = defaultdict(set)
    for a, b in audit.within(audit.threshold)[:, :2].tolist():
        for x, y in ((a, b), (b, a)):
            if is_stage1(audit.group(x)) and is_held_out(audit.group(y)):
                held[audit.group(y)].add(y)
    return dict(
        stage1_images_with_heldout_copy=len(stage1_exclusions(audit)),
        heldout_images_with_stage1_copy={
            g: len(v)
            for g, v in sorted(held.items())
        })


# ------------------------------------------------------ planted copies
def read_planted(data_root: str) -> List[dict]:
    """The demo generator's manifests (``<dataset>/planted_copies.json``):
    ``{'copy', 'source', 'transform'}`` per planted copy, paths relative
    to the data root. Empty for real data."""
    out = []
    for info in TABLE1.values():
        path = osp.join(data_root, info['folder'], PLANTED)
        if osp.isfile(path):
            with open(path) as f:
                out += json.load(f)['copies']
    return out


def planted_scores(audit: Audit, planted: Iterable[dict],
                   thresholds: Iterable[int]) -> List[dict]:
    """Precision and recall of the pairs at each threshold against the
    planted copies: a found pair is true if it is a (copy, source) pair of
    the manifest, false otherwise (any other pair, exact ones included:
    the demo data have no copies but the planted ones)."""
    truth = {frozenset((p['copy'], p['source'])) for p in planted}
    rows = []
    for t in thresholds:
        found = {
            frozenset((audit.rel(a), audit.rel(b)))
            for a, b in audit.within(t)[:, :2].tolist()
        }
        tp = len(found & truth)
        rows.append(
            dict(
                threshold=t,
                found=len(found),
                true=tp,
                planted=len(truth),
                precision=tp / len(found) if found else None,
                recall=tp / len(truth) if truth else None,
                missed=sorted(' <- '.join(sorted(p))
                              for p in truth - found)))
    return rows


def summary(audit: Audit, cells: Dict[Tuple[str, str], int]) -> dict:
    """What ``audit_summary.json`` holds."""
    pairs = audit.within(audit.threshold)
    return dict(
        data_root=osp.abspath(audit.data_root),
        protocol=audit.protocol,
        threshold=audit.threshold,
        images=len(audit.images),
        decoded=audit.decoded,
        from_cache=audit.cached,
        unreadable=audit.errors,
        groups=dict(Counter(g for g, _ in audit.images)),
        pairs=dict(
            exact=int(pairs[:, 4].sum()),
            near=int(len(pairs) - pairs[:, 4].sum())),
        cells={f'{a} x {b}': n
               for (a, b), n in cells.items()},
        leakage=leakage(audit))
