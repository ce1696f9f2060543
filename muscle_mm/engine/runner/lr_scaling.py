# Copyright (c) muscle_mm contributors. All rights reserved.
"""The linear LR scaling ``--auto-scale-lr`` applies, read from a config."""
import copy
from typing import Dict, Optional, Tuple

from mmengine.config import Config

from muscle_mm.engine.loops.utils import cl_tasks, task_entry


def _batch_sizes(cfg: Config) -> Dict[str, int]:
    """Per-process training batch size, per task for a multi-task config."""
    loop = cfg.get('train_cfg') or {}
    if loop.get('type') != 'MultiTaskCLLoop':
        return {'': cfg.train_dataloader.batch_size}
    sizes = {}
    for task in cl_tasks(cfg):
        loader = copy.deepcopy(
            task_entry(cfg.train_dataloader[task], 'train_dataloader', task))
        loader.update(loop.get('loader_overrides') or {})
        sizes[task] = loader.batch_size
    return sizes


def scale_ratio(batch_sizes: Dict[str, int], base, world_size: int,
                where: str) -> float:
    """``world_size x batch / base_batch_size``, the same for every task.

    ``base`` is ``auto_scale_lr.base_batch_size``: a number, or for a
    multi-task config a dict task -> number (the batch its LR was set for).
    One optimizer serves all tasks, so their ratios must agree.
    """
    if isinstance(base, dict):
        missing = sorted(set(batch_sizes) - set(base))
        if missing:
            raise KeyError(f'{where}: auto_scale_lr.base_batch_size has no '
                           f'entry for task(s) {missing}; it has '
                           f'{sorted(base)}.')
        ratios = {
            t: world_size * bs / base[t]
            for t, bs in batch_sizes.items()
        }
    else:
        ratios = {t: world_size * bs / base for t, bs in batch_sizes.items()}
    if len(set(ratios.values())) > 1:
        raise ValueError(
            f'{where}: the tasks would scale the shared learning rate by '
            f'different factors {ratios} (world size x batch size / '
            'auto_scale_lr.base_batch_size); change their batch sizes in '
            'proportion, or set base_batch_size per task to match.')
    return next(iter(ratios.values()))


def lr_scaling(cfg: Config, world_size: int) -> Tuple[float, float]:
    """(base LR, ratio) that ``--auto-scale-lr`` gives ``cfg`` on
    ``world_size`` processes; the scaled LR is their product."""
    auto = cfg.get('auto_scale_lr')
    if not auto or 'base_batch_size' not in auto:
        raise KeyError('The config declares no auto_scale_lr.base_batch_size '
                       '(the total batch its learning rate was set for), so '
                       'its LR cannot follow the number of GPUs.')
    lr = cfg.optim_wrapper.optimizer.lr
    return lr, scale_ratio(
        _batch_sizes(cfg), auto.base_batch_size, world_size, 'config')


def describe(lr: float, ratio: Optional[float]) -> str:
    return f'{lr:g}' if not ratio or ratio == 1 else \
        f'{lr:g} x {ratio:g} = {lr * ratio:g}'
