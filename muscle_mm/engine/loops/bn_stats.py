# Copyright (c) muscle_mm contributors. All rights reserved.
"""Precise BatchNorm statistics of the shared backbone, per task or pooled.

In stage 2 the backbone's running statistics are those of whichever task
trained last (and of its geometry: the lung task's dilated layers 3/4).
Scoring another task, or exporting the backbone, with them measures the
statistics more than the weights. These helpers re-estimate them with the
weights fixed: the mean over batches of each batch's mean and variance
(precise BN; Wu & Johnson, "Rethinking Batch in BatchNorm", 2021), averaged
over the ranks. The arithmetic is mmpretrain's ``update_bn_stats``; it is
not called because it runs the whole model through its top-level data
preprocessor, while here only the backbone runs, behind each task's own
preprocessor and in the geometry asked for.
"""
import contextlib
import copy
import itertools
import random
from typing import Dict, Iterable, Iterator, List, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size
from torch.nn.modules.batchnorm import _BatchNorm

from .utils import task_entry, unwrap_model


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Leave the RNGs of ``random``, numpy and torch as they were, so that
    re-estimating statistics does not change what training draws next."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@contextlib.contextmanager
def restored_buffers(module: nn.Module) -> Iterator[None]:
    """Put ``module``'s buffers back as they were on leaving the block."""
    saved = {k: v.clone() for k, v in module.named_buffers()}
    try:
        yield
    finally:
        for k, v in module.named_buffers():
            v.copy_(saved[k])


def estimation_loader(runner, task: str, loader_overrides: Optional[dict],
                      seed: int):
    """A dataloader over ``task``'s training split for BN estimation: the
    train pipeline, a fixed shuffled order, no persistent workers, so the
    training loaders and their workers are left alone."""
    cfg = copy.deepcopy(
        task_entry(runner.cfg.train_dataloader[task], 'train_dataloader',
                   task))
    cfg.update(loader_overrides or {})
    cfg.update(
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=seed))
    return runner.build_dataloader(cfg, seed=seed)


@torch.no_grad()
def estimate_backbone_bn(model: nn.Module,
                         batches: Dict[str, Iterable],
                         geometry: Optional[str] = None) -> List[str]:
    """Re-estimate the BN statistics of ``model.backbone`` (a
    :class:`MultiTaskModel`) from ``batches`` (task -> data batches).

    Each batch goes through its task's data preprocessor and the backbone
    alone, in that task's geometry when ``geometry == 'task'``, else in the
    backbone's own (plain) geometry. The statistics of all batches of all
    tasks are pooled with equal weight per batch, then over the ranks.

    Returns:
        list[str]: Names of the BN layers that were re-estimated.
    """
    model = unwrap_model(model)
    backbone = model.backbone
    layers = [(n, m) for n, m in backbone.named_modules()
              if isinstance(m, _BatchNorm) and m.track_running_stats]
    means = [torch.zeros_like(m.running_mean) for _, m in layers]
    variances = [torch.zeros_like(m.running_var) for _, m in layers]
    state = [(m.momentum, m.training) for _, m in layers]
    for _, m in layers:
        m.momentum = 1.0  # running stats = this batch's
        m.train()
    count = 0
    try:
        for task, task_batches in batches.items():
            task_model = model.tasks[task]
            for data in task_batches:
                data = task_model.data_preprocessor(data, False)
                with (model.task_geometry(task) if geometry == 'task' else
                      contextlib.nullcontext()):
                    backbone(data['inputs'])
                for i, (_, m) in enumerate(layers):
                    means[i] += m.running_mean
                    variances[i] += m.running_var
                count += 1
    finally:
        for (_, m), (momentum, training) in zip(layers, state):
            m.momentum = momentum
            m.train(training)
    total = torch.tensor(float(count), device=means[0].device if means else
                         'cpu')
    if get_world_size() > 1:
        all_reduce(total)
        for t in means + variances:
            all_reduce(t)
    if total.item() == 0:
        raise ValueError('Precise BN: no batch to estimate the backbone\'s '
                         f'statistics from (tasks {list(batches)}).')
    for i, (_, m) in enumerate(layers):
        m.running_mean.copy_(means[i] / total)
        m.running_var.copy_(variances[i] / total)
    return [n for n, _ in layers]


def first_batches(loader, num_samples: int) -> Iterator:
    """The first batches of ``loader`` holding ``num_samples`` images over
    all ranks (at least one batch; all of them if the split is smaller),
    read lazily. Iterate them inside :func:`preserved_rng`."""
    per_step = loader.batch_size * get_world_size()
    steps = min(len(loader), max(1, num_samples // per_step))
    return itertools.islice(loader, steps)
