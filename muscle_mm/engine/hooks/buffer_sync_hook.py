# Copyright (c) muscle_mm contributors. All rights reserved.
"""One set of BatchNorm statistics on every rank before each use."""
from mmengine.dist import all_reduce_params, is_distributed
from mmengine.hooks import Hook

from muscle_mm.registry import HOOKS


@HOOKS.register_module()
class BufferSyncHook(Hook):
    """Averages the model's buffers (BatchNorm running statistics) over the
    ranks before every validation and test and after every training epoch
    (task-iterate), i.e. before each checkpoint is written.

    DDP runs with ``broadcast_buffers=False`` and plain BN, so each rank
    normalises its own per-GPU batch, as the one-process run does, and
    keeps its own running statistics; without this hook ``--test-last``
    scores each rank's shard with other statistics than the checkpoint's
    (rank 0's). mmengine's ``SyncBuffersHook`` skips the sync of a
    validation that follows a training epoch, but :class:`MultiTaskCLLoop`
    validates *before* ``after_train_epoch``, so that validation would see
    unsynced buffers. The cost is one all-reduce of the buffers (~10k floats
    for ResNet-18 with its heads) per call. Nothing happens on one process.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) saves

    @staticmethod
    def _sync(runner) -> None:
        if is_distributed():
            all_reduce_params(runner.model.buffers(), op='mean')

    def before_val_epoch(self, runner) -> None:
        self._sync(runner)

    def before_test_epoch(self, runner) -> None:
        self._sync(runner)

    def after_train_epoch(self, runner) -> None:
        self._sync(runner)
