# Copyright (c) muscle_mm contributors. All rights reserved.
"""The exported stage-2 backbone's BatchNorm statistics, pooled over tasks."""
from typing import Optional

from mmengine.hooks import Hook

from muscle_mm.registry import HOOKS
from ..loops.bn_stats import (estimate_backbone_bn, estimation_loader,
                              estimation_steps, first_batches, preserved_rng)

META_KEY = 'backbone_bn'


@HOOKS.register_module()
class BackboneBNHook(Hook):
    """Re-estimates the shared backbone's BN statistics at the end of a
    :class:`MultiTaskCLLoop`, pooled over every task's training split in the
    backbone's plain geometry, before the last checkpoint is written.

    Without it the last checkpoint, hence the backbone stage 3 and the
    exports start from, carries the running statistics of the task trained
    last (MUSCLE's last task-iterate depends on the seed, MUSCLE--'s is
    always TBX) and, after the lung task, of its dilated geometry. Pooled
    statistics are the same recipe for MUSCLE and MUSCLE--; the checkpoint's
    ``meta['backbone_bn']`` says how they were made (the model card reads
    it).

    Args:
        num_samples (int): Images per task, over all ranks. Defaults to 512.
    """

    priority = 'BELOW_NORMAL'  # after BufferSyncHook, before CheckpointHook

    def __init__(self, num_samples: int = 512) -> None:
        if num_samples < 1:
            raise ValueError('BackboneBNHook: num_samples must be >= 1, got '
                             f'{num_samples}.')
        self.num_samples = num_samples
        self._record: Optional[dict] = None

    def after_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if not hasattr(loop, 'dataloaders') or \
                loop.epoch + 1 < loop.max_epochs:
            return
        overrides = (runner.cfg.get('train_cfg') or {}).get('loader_overrides')
        batches, images = {}, {}
        for task in loop.tasks:
            loader = estimation_loader(runner, task, overrides, runner.seed)
            batches[task] = first_batches(loader, self.num_samples)
            images[task] = estimation_steps(loader, self.num_samples) * \
                loader.batch_size * runner.world_size
        with preserved_rng():
            layers = estimate_backbone_bn(runner.model, batches)
        self._record = dict(
            method='precise BN, pooled over tasks',
            geometry='plain',
            images_per_task=images,
            layers=len(layers))
        runner.logger.info(
            f'BackboneBNHook: {len(layers)} BN layers of the backbone '
            're-estimated in its plain geometry from the training images of '
            + ', '.join(f'{t} ({n})' for t, n in images.items()) +
            ' before the last checkpoint.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._record is not None:
            checkpoint.setdefault('meta', {})[META_KEY] = self._record
