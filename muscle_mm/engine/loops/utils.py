# Copyright (c) muscle_mm contributors. All rights reserved.
import copy
import os.path as osp
from typing import List, Optional, Sequence, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.dist import get_world_size
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def cl_tasks(cfg: Config) -> List[str]:
    """The tasks a ``MultiTaskCLLoop`` config trains, in order:
    ``train_cfg.tasks`` when given, else the keys of ``train_dataloader``
    (where the stage-2 configs name them, ``_base_/datasets/xray4.py``)."""
    tasks = cfg.train_cfg.get('tasks')
    return list(tasks if tasks is not None else cfg.train_dataloader)


def check_task_dict(what: str, value, tasks: Sequence[str]) -> None:
    """Fail with a clear message unless ``value`` has an entry per task."""
    if not isinstance(value, dict) or 'type' in value or 'dataset' in value:
        raise TypeError(
            f'{what} must be a dict of task name -> config (one per task of '
            f'{list(tasks)}), got {type(value).__name__} with keys '
            f'{list(value) if isinstance(value, dict) else None}.')
    missing = [t for t in tasks if t not in value]
    if missing:
        raise KeyError(f'{what} has no entry for task(s) {missing}; it has '
                       f'{list(value)}. Add one per task.')


def task_entry(value: Union[dict, str], key: str, task: str):
    """A task's config, given inline or as the path of a dataset config.

    A path (e.g. ``configs/_base_/datasets/pneumonia.py``) stands for that
    file's ``key`` (``train_dataloader``, ``val_dataloader``,
    ``val_evaluator``): the dataset configs of the four tasks all define the
    same names, so one config cannot inherit them all as ``_base_``.
    """
    if not isinstance(value, str):
        return value
    if not osp.isfile(value):
        raise FileNotFoundError(f'The {key} of task "{task}" points to '
                                f'"{value}", which does not exist.')
    cfg = Config.fromfile(value)
    if key not in cfg:
        raise KeyError(f'The {key} of task "{task}" points to "{value}", '
                       f'which defines no `{key}`.')
    return cfg[key]


def check_multitask_model(model: nn.Module, tasks: Sequence[str], who: str,
                          where: str) -> None:
    """Fail unless ``model`` is a MultiTaskModel defining every task."""
    model = unwrap_model(model)
    model_tasks = getattr(model, 'tasks', None)
    if not hasattr(model, 'active_task') or model_tasks is None:
        raise TypeError(f'{who} needs a MultiTaskModel (with `tasks` and '
                        f'`active_task`), got {type(model).__name__}.')
    unknown = [t for t in tasks if t not in model_tasks]
    if unknown:
        raise KeyError(f'{who}: unknown task(s) {unknown} in {where}; the '
                       f'model defines {list(model_tasks)}.')


def build_task_loader(runner, loader: Union[dict, str, DataLoader],
                      task: str, overrides: Optional[dict],
                      diff_rank_seed: bool) -> DataLoader:
    """A task's train dataloader, built with the runner from its config
    (given inline or by path) with ``overrides`` set; never empty."""
    loader = task_entry(loader, 'train_dataloader', task)
    if isinstance(loader, dict):
        loader = copy.deepcopy(loader)
        loader.update(overrides or {})
        loader = runner.build_dataloader(
            loader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
    if len(loader) == 0:
        raise ValueError(
            f'MultiTaskCLLoop: task "{task}" has no training iteration '
            f'({len(loader.dataset)} samples, batch size {loader.batch_size}'
            f', world size {get_world_size()}, drop_last may drop them '
            'all); check its train split.')
    return loader
