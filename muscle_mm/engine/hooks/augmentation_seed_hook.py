# Copyright (c) muscle_mm contributors. All rights reserved.
"""Random augmentation as a function of (seed, epoch, sample), so that a
killed-and-resumed run draws what the uninterrupted one draws."""
import contextlib
import random
from typing import Callable, List

import numpy as np
import torch
from mmengine.hooks import Hook
from torch.utils.data import get_worker_info

from muscle_mm.registry import HOOKS
from ..loops.bn_stats import preserved_rng


class SeededPipeline:
    """A dataset's pipeline run with ``random``, numpy and torch seeded from
    (seed, epoch, ``sample_idx``); the caller's RNG states are restored.

    mmengine seeds each dataloader worker once, when it starts. Persistent
    workers (the configs' choice) then carry their RNG state from epoch to
    epoch, and a resumed run starts new workers: its flips differ from the
    uninterrupted run's from the resumed epoch on. Seeded per sample, the
    draws no longer depend on workers, their persistence, their number or
    the number of processes. ``epoch`` lives in shared memory, so persistent
    workers see the value the main process sets before each epoch.
    """

    def __init__(self, pipeline: Callable, seed: int) -> None:
        self.pipeline = pipeline
        self.seed = int(seed)
        self.epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def __call__(self, results: dict):
        index = results.get('sample_idx')
        if index is None:
            return self.pipeline(results)
        state = np.random.SeedSequence(
            [self.seed, int(self.epoch), int(index)]).generate_state(2)
        # a worker's RNGs serve only this pipeline; the main process's are
        # the training step's too, so they are put back there
        with (preserved_rng() if get_worker_info() is None else
              contextlib.nullcontext()):
            random.seed(int(state[0]))
            np.random.seed(int(state[0]))
            # the CPU generator alone: torch.manual_seed also seeds every
            # accelerator, ~90 us a sample
            torch.default_generator.manual_seed(
                int(state[0]) << 32 | int(state[1]))
            return self.pipeline(results)

    def __getattr__(self, name: str):
        if name == 'pipeline':  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self) -> str:
        return f'SeededPipeline(seed={self.seed}, {self.pipeline!r})'


def seed_pipelines(dataset, seed: int) -> List[SeededPipeline]:
    """Wrap the pipeline of ``dataset`` (and of the datasets it wraps) in
    :class:`SeededPipeline`, once; returns the wrappers."""
    if isinstance(getattr(dataset, 'pipeline', None), SeededPipeline):
        return [dataset.pipeline]
    if callable(getattr(dataset, 'pipeline', None)):
        dataset.pipeline = SeededPipeline(dataset.pipeline, seed)
        return [dataset.pipeline]
    inner = getattr(dataset, 'datasets', None) or [getattr(
        dataset, 'dataset', None)]
    return [p for d in inner if d is not None for p in seed_pipelines(d, seed)]


@HOOKS.register_module()
class AugmentationSeedHook(Hook):
    """Seeds every training sample's augmentation from (``runner.seed``,
    epoch, sample index) with :class:`SeededPipeline`.

    ``before_train`` wraps the pipelines of the train loop's dataloaders
    (every task's in :class:`MultiTaskCLLoop`), before their workers start;
    ``before_train_epoch`` sets the epoch (a task-iterate in the CL loop,
    whose sub-epochs share it when ``epochs_per_task > 1``).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pipelines: List[SeededPipeline] = []

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        loaders = getattr(loop, 'dataloaders', None) or {'': loop.dataloader}
        self._pipelines = [
            p for loader in loaders.values()
            for p in seed_pipelines(loader.dataset, runner.seed)
        ]

    def before_train_epoch(self, runner) -> None:
        for pipeline in self._pipelines:
            pipeline.epoch.fill_(runner.epoch)
