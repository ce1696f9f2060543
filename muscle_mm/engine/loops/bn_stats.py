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
    cpu = torch.default_generator
    states = random.getstate(), np.random.get_state(), cpu.get_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        cpu.set_state(states[2])


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


def estimation_steps(loader, num_samples: int) -> int:
    """Batches per rank that hold ``num_samples`` images over all ranks (at
    least one; all of them if the split is smaller)."""
    per_step = loader.batch_size * get_world_size()
    return min(len(loader), max(1, num_samples // per_step))


def first_batches(loader, num_samples: int) -> Iterator:
    """The first :func:`estimation_steps` batches of ``loader``, read
    lazily. Iterate them inside :func:`preserved_rng`."""
    return itertools.islice(loader, estimation_steps(loader, num_samples))


@contextlib.contextmanager
def task_statistics(model: nn.Module, task: str, loader,
                    num_samples: int) -> Iterator[None]:
    """A block in which the backbone of ``model`` has precise BN statistics
    of ``task`` (from ``loader``, in the task's geometry); the running
    statistics and the RNGs are as before once it is left."""
    with restored_buffers(unwrap_model(model).backbone):
        with preserved_rng():
            estimate_backbone_bn(
                model, {task: first_batches(loader, num_samples)},
                geometry='task')
        yield
