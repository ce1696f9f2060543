# Copyright (c) muscle_mm contributors. All rights reserved.
"""Deterministic, group-aware re-splits to the paper's counts (Table 1)."""
import json
import os
import os.path as osp
import random
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from .base import SPLIT_DIR, SPLITS, split_file


def largest_remainder(total: int, weights: Dict[str, float]) -> Dict[str, int]:
    """Integers proportional to ``weights`` summing exactly to ``total``;
    ties go to the first key in sorted order (deterministic)."""
    norm = sum(weights.values())
    if norm <= 0:
        return {k: 0 for k in weights}
    quota = {k: total * w / norm for k, w in weights.items()}
    out = {k: int(q) for k, q in quota.items()}
    rest = total - sum(out.values())
    for k in sorted(quota, key=lambda k: (out[k] - quota[k], k))[:rest]:
        out[k] += 1
    return out


def grouped_split(items: Sequence[Tuple[str, str, str]],
                  paper_counts: Dict[str, int],
                  seed: int = 0) -> Dict[str, List[str]]:
    """Split ``(path, group, stratum)`` items into train/val/test.

    Targets are the paper's counts scaled to ``len(items)`` (equal to them
    when the release matches the paper). Whole groups (patients) go to one
    split, so val/test may miss their target by a few images when groups
    do not fit exactly; strata (class, body part) keep their proportion.
    """
    paths = [p for p, _, _ in items]
    if len(set(paths)) != len(paths):
        raise ValueError('duplicate paths among the split candidates')
    targets = largest_remainder(len(items), paper_counts)
    groups: Dict[str, List[str]] = defaultdict(list)
    stratum_of: Dict[str, str] = {}
    for path, group, stratum in sorted(items):
        groups[group].append(path)
        stratum_of.setdefault(group, stratum)
    strata: Dict[str, List[str]] = defaultdict(list)
    for g in sorted(groups):
        strata[stratum_of[g]].append(g)
    sizes = {s: sum(len(groups[g]) for g in gs) for s, gs in strata.items()}
    quota = {
        split: largest_remainder(targets[split], sizes)
        for split in ('test', 'val')
    }
    rng = random.Random(seed)
    out: Dict[str, List[str]] = {s: [] for s in SPLITS}
    left = []  # groups that fit no stratum quota, in seeded order
    for s in sorted(strata):
        gs = strata[s][:]
        rng.shuffle(gs)
        filled = dict(test=0, val=0)
        for g in gs:
            dest = _fit(len(groups[g]), filled, quota, s)
            if dest is None:
                left.append(g)
            else:
                out[dest].extend(groups[g])
    # second pass: fill what the strata left of the overall targets
    filled = {k: len(out[k]) for k in ('test', 'val')}
    total = {k: {'': targets[k]} for k in ('test', 'val')}
    for g in left:
        dest = _fit(len(groups[g]), filled, total, '') or 'train'
        out[dest].extend(groups[g])
    return {k: sorted(v) for k, v in out.items()}


def _fit(n: int, filled: dict, quota: dict, stratum: str):
    for split in ('test', 'val'):
        if filled[split] + n <= quota[split][stratum]:
            filled[split] += n
            return split
    return None


def write_splits(data_root: str,
                 splits: Dict[str, List[str]],
                 info: dict,
                 folder: Optional[str] = None) -> None:
    """Split files and ``info.json`` into ``folder`` (default
    ``<data_root>/muscle_splits``; see ``base.split_dir``)."""
    folder = folder or osp.join(data_root, SPLIT_DIR)
    os.makedirs(folder, exist_ok=True)
    for split, paths in splits.items():
        with open(split_file(folder, split), 'w') as f:
            f.writelines(p + '\n' for p in paths)
    with open(osp.join(folder, 'info.json'), 'w') as f:
        json.dump(info, f, indent=2)
