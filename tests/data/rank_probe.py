# Copyright (c) muscle_mm contributors. All rights reserved.
"""Hooks the multi-process tests add to real configs (``custom_imports``):
what each rank saw, written to ``<work_dir>/probe_rank<r>.json``, and an
interruption after N epochs (a run killed once its checkpoint is saved)."""
import hashlib
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from muscle_mm.registry import HOOKS


def buffers_digest(model) -> str:
    digest = hashlib.sha256()
    for name, buf in sorted(model.state_dict().items()):
        name = name[len('module.'):] if name.startswith('module.') else name
        if 'running_' in name or 'num_batches' in name:
            digest.update(name.encode())
            digest.update(buf.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Per rank: the task order of every task-iterate, the LR of every
    iteration and a digest of the BN buffers at every validation/test."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.record = dict(orders=[], lr=[], val_buffers=[], test_buffers=[])

    def _dump(self, runner) -> None:
        path = osp.join(runner.work_dir, f'probe_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.record, f)

    def before_train_epoch(self, runner) -> None:
        order = getattr(runner.train_loop, 'order', None)
        if order is not None:
            self.record['orders'].append(order)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        lr = runner.optim_wrapper.get_lr()['lr'][0]
        self.record['lr'].append(lr)

    def before_val_epoch(self, runner) -> None:
        self.record['val_buffers'].append(buffers_digest(runner.model))
        self._dump(runner)

    def before_test_epoch(self, runner) -> None:
        self.record['test_buffers'].append(buffers_digest(runner.model))
        self._dump(runner)

    def after_train(self, runner) -> None:
        self._dump(runner)


@HOOKS.register_module()
class StopAfterEpochsHook(Hook):
    """Raise when epoch (task-iterate) ``epochs`` is done and saved; a
    run resumed past it goes on."""

    priority = 'LOWEST'  # after CheckpointHook has written the checkpoint

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def after_train_epoch(self, runner) -> None:
        if runner.train_loop.epoch + 1 == self.epochs:
            raise KeyboardInterrupt(f'stopped after {self.epochs} epochs')
