# Copyright (c) muscle_mm contributors. All rights reserved.
"""The aggregated, unlabeled X-ray set of MD-MoCo (MUSCLE Sec. 2.1) and a
sampler that draws its sources in chosen proportions."""
import copy
import math
import os.path as osp
from numbers import Real
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import MMLogger
from torch.utils.data import Sampler

from muscle_mm.registry import DATA_SAMPLERS, DATASETS


@DATASETS.register_module()
class MultiSourceXrayDataset(BaseDataset):
    """The union of the training images of several X-ray datasets.

    MD-MoCo (MUSCLE Sec. 2.1) pre-trains on the training sets of all nine
    datasets of Table 1 without their labels. Each source is built through
    the ``DATASETS`` registry (any reader yielding ``img_path``), and each
    item keeps only ``img_path``, ``source`` (the reader's ``source`` tag, or
    its type name) and ``source_idx`` (position in ``sources``), so readers
    of classification, segmentation and detection sets mix freely. The
    per-source counts are logged when the dataset is built.

    Per-source sampling weights: give every source a ``weight``; with
    ``sampler=dict(type='MultiSourceWeightedSampler')`` source ``s`` then
    fills a ``weight_s / sum(weights)`` share of each epoch. Without weights
    (or with the default sampler) every image is equally likely.

    Args:
        sources (list[dict]): Dataset configs; each may carry ``weight``
            (a positive number), either on every source or on none.
        data_root (str): Joined in front of each source's relative
            ``data_root``, so one config switches between ``data/`` and
            ``data/demo/``. Defaults to ''.
        exclude_file (str, optional): Images to leave out, one path per
            line relative to ``data_root``: the ``stage1_exclude.txt`` of
            ``tools/misc/audit_overlap.py`` (stage-1 images with a copy in
            a task's val/test split). The count left out per source is
            logged. Defaults to None (the paper: every image).
        pipeline (Sequence): Transforms, usually starting with
            ``LoadXrayImage``. Defaults to ().
        **kwargs: ``serialize_data``, ``lazy_init``, ``max_refetch``,
            ``test_mode``, ``indices`` of
            :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 sources: Sequence[dict],
                 data_root: str = '',
                 pipeline: Sequence = (),
                 exclude_file: Optional[str] = None,
                 **kwargs) -> None:
        self.source_cfgs, self.source_weights = self._parse_sources(sources)
        self.exclude_file = exclude_file
        self.excluded: List[int] = []  # images left out, per source
        self.source_names: List[str] = []
        self.source_counts: List[int] = []
        self._item_source: Optional[np.ndarray] = None
        super().__init__(data_root=data_root, pipeline=pipeline, **kwargs)

    @staticmethod
    def _parse_sources(sources):
        name = MultiSourceXrayDataset.__name__
        if not isinstance(sources, (list, tuple)) or not sources:
            raise ValueError(f'{name}: sources must be a non-empty list of '
                             f'dataset configs, got {sources!r}')
        cfgs, weights = [], []
        for i, src in enumerate(sources):
            if not isinstance(src, dict) or 'type' not in src:
                raise TypeError(f'{name}: sources[{i}] must be a dataset '
                                f"config dict with a 'type', got {src!r}")
            src = copy.deepcopy(dict(src))
            weight = src.pop('weight', None)
            if weight is not None and (not isinstance(weight, Real)
                                       or not math.isfinite(weight)
                                       or weight <= 0):
                raise ValueError(f'{name}: sources[{i}] ({src["type"]}) has '
                                 f'weight={weight!r}; expected a positive '
                                 'number')
            cfgs.append(src)
            weights.append(weight)
        given = [w is not None for w in weights]
        if any(given) and not all(given):
            missing = [
                f'{i} ({c["type"]})'
                for i, (c, g) in enumerate(zip(cfgs, given)) if not g
            ]
            raise ValueError(
                f'{name}: some sources carry a weight and others do not '
                f'(missing: {", ".join(missing)}); give every source a '
                'weight, or none for equally likely images')
        return cfgs, ([float(w) for w in weights] if all(given) else None)

    def load_data_list(self) -> List[dict]:
        """Build each source and keep its items' paths and source tags."""
        data_list = []
        self.source_names, self.source_counts = [], []
        exclude = self._read_exclusions()
        self.excluded = []
        for idx, cfg in enumerate(self.source_cfgs):
            cfg = copy.deepcopy(cfg)
            root = cfg.get('data_root')
            if self.data_root and isinstance(root, str) \
                    and not osp.isabs(root):
                cfg['data_root'] = osp.join(self.data_root, root)
            cfg.setdefault('pipeline', [])
            # read once here and dropped: no need to pack it into bytes
            cfg.setdefault('serialize_data', False)
            where = (f'sources[{idx}] ({cfg["type"]}, data_root='
                     f'{cfg.get("data_root")!r}, split={cfg.get("split")!r})')
            try:
                dataset = DATASETS.build(cfg)
            except Exception as err:
                if hasattr(err, 'add_note'):  # Python >= 3.11
                    err.add_note(f'while building {type(self).__name__} '
                                 f'{where}')
                raise
            if len(dataset) == 0:
                raise ValueError(
                    f'{type(self).__name__}: {where} has no images; check '
                    'its data_root and split, or remove it from sources')
            tag, left_out = None, 0
            for i in range(len(dataset)):
                info = dataset.get_data_info(i)
                if 'img_path' not in info:
                    raise KeyError(f'{type(self).__name__}: item {i} of '
                                   f"{where} has no 'img_path'")
                tag = info.get('source') or cfg['type']
                if osp.abspath(info['img_path']) in exclude:
                    left_out += 1
                    continue
                data_list.append(
                    dict(
                        img_path=info['img_path'], source=tag, source_idx=idx))
            self.source_names.append(tag)
            self.source_counts.append(len(dataset) - left_out)
            self.excluded.append(left_out)
        if exclude:
            MMLogger.get_current_instance().info(
                f'{type(self).__name__}: left out {sum(self.excluded)} of '
                f'{len(exclude)} image(s) listed in {self.exclude_file} '
                '(copies of task val/test images found by the leakage '
                'audit): ' + ', '.join(
                    f'{n} {name}'
                    for name, n in zip(self.source_names, self.excluded)))
        return data_list

    def _read_exclusions(self) -> set:
        """Absolute paths listed in ``exclude_file`` (empty without one)."""
        if self.exclude_file is None:
            return set()
        if not osp.isfile(self.exclude_file):
            raise FileNotFoundError(
                f'{type(self).__name__}: exclude_file '
                f'{self.exclude_file} not found; the leakage audit writes '
                'it: python tools/misc/audit_overlap.py --data-root '
                f'{self.data_root or "DATA_ROOT"} --work-dir DIR (then '
                'DIR/stage1_exclude.txt)')
        with open(self.exclude_file, encoding='utf-8') as f:
            return {
                osp.abspath(osp.join(self.data_root, line.strip()))
                for line in f if line.strip()
            }

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        self._item_source = np.array(
            [self.get_data_info(i)['source_idx'] for i in range(len(self))],
            dtype=np.int64)
        # counts after a possible `indices` subset
        self.source_counts = np.bincount(
            self._item_source, minlength=len(self.source_cfgs)).tolist()
        self._log_counts()

    @property
    def item_source_idx(self) -> np.ndarray:
        """``source_idx`` of every item, in dataset order."""
        if not self._fully_initialized:
            self.full_init()
        return self._item_source

    def _log_counts(self) -> None:
        total = sum(self.source_counts)
        weights = self.source_weights or self.source_counts
        wsum = float(sum(weights))
        lines = [
            f'{type(self).__name__}: {total} images from '
            f'{len(self.source_counts)} sources',
            f'  {"idx":>3}  {"source":<16}{"images":>9}  '
            f'{"share of draws":>14}'
        ]
        for i, (name, count) in enumerate(
                zip(self.source_names, self.source_counts)):
            lines.append(f'  {i:>3}  {name:<16}{count:>9}  '
                         f'{weights[i] / wsum:>14.2%}')
        if self.source_weights is not None:
            lines.append('  (shares hold with sampler=dict(type='
                         "'MultiSourceWeightedSampler'))")
        MMLogger.get_current_instance().info('\n'.join(lines))


@DATA_SAMPLERS.register_module()
class MultiSourceWeightedSampler(Sampler):
    """Draw items of a :class:`MultiSourceXrayDataset` by source weights.

    Each epoch draws ``num_samples`` items with replacement; an item of
    source ``s`` has probability ``w_s / (sum(w) * n_s)``, so source ``s``
    fills a ``w_s / sum(w)`` share whatever its size (``n_s`` images). The
    draw is seeded by ``seed + epoch`` and identical on every rank; rank
    ``r`` takes every ``world_size``-th item from ``r``, as mmengine's
    ``DefaultSampler`` does. mmengine's ``DefaultSampler`` cannot weight
    items, and torch's ``WeightedRandomSampler`` is neither seeded per epoch
    nor distributed, hence this class.

    Args:
        dataset: A dataset with ``item_source_idx`` and ``source_weights``
            (None: every image equally likely).
        seed (int, optional): Random seed; None draws one shared by ranks.
        num_samples (int, optional): Items per epoch over all ranks.
            Defaults to ``len(dataset)``.
    """

    def __init__(self,
                 dataset,
                 seed: Optional[int] = None,
                 num_samples: Optional[int] = None) -> None:
        if not hasattr(dataset, 'item_source_idx') \
                or not hasattr(dataset, 'source_weights'):
            raise TypeError(
                f'{type(self).__name__} needs a dataset with '
                "'item_source_idx' and 'source_weights' (e.g. "
                f'MultiSourceXrayDataset), got {type(dataset).__name__}')
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0

        source = np.asarray(dataset.item_source_idx)
        counts = np.bincount(source)
        weights = dataset.source_weights
        if weights is None:
            probs = np.ones(len(source))
        else:
            weights = np.asarray(weights, dtype=np.float64)
            probs = weights[source] / counts[source]
        self.probs = torch.as_tensor(probs / probs.sum())

        total = len(dataset) if num_samples is None else int(num_samples)
        if total <= 0:
            raise ValueError(f'{type(self).__name__}: num_samples must be '
                             f'positive, got {num_samples!r}')
        self.num_samples = math.ceil(total / world_size)
        self.total_size = self.num_samples * world_size

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        indices = torch.multinomial(
            self.probs, self.total_size, replacement=True, generator=g)
        return iter(indices[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Called by ``DistSamplerSeedHook``: a new draw every epoch."""
        self.epoch = epoch
