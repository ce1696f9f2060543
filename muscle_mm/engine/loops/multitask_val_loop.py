# Copyright (c) muscle_mm contributors. All rights reserved.
import contextlib
from typing import ContextManager, Dict, Optional, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader

from muscle_mm.registry import LOOPS
from .bn_stats import estimation_loader, task_statistics
from .utils import check_task_dict, task_entry, unwrap_model


@LOOPS.register_module()
class MultiTaskValLoop(BaseLoop):
    """Validate every task of a :class:`MultiTaskModel` in turn.

    ``val_dataloader`` and ``val_evaluator`` are dicts of task name -> config
    (or -> the path of a dataset config, whose ``val_dataloader`` /
    ``val_evaluator`` is used).
    Each task is validated with its own dataloader and evaluator while it is
    the model's active task; metrics come back as ``'<task>/<metric>'``.

    Args:
        runner (Runner): The runner.
        dataloader (dict): Task name -> dataloader (config).
        evaluator (dict): Task name -> evaluator (config).
        tasks (Sequence[str], optional): Tasks to validate. Defaults to the
            keys of ``dataloader``.
        precise_bn (dict, optional): ``dict(num_samples=N)``: before each
            task is scored, the shared backbone's BN statistics are
            re-estimated on N images of that task's training split (its
            ``train_dataloader``, in its geometry; see :mod:`.bn_stats`),
            and put back afterwards, so training goes on unchanged. None
            scores every task with the statistics training left, those of
            the task trained last. Defaults to None.
    """

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[dict, str]],
                 evaluator: Dict[str, Union[dict, str]],
                 tasks: Optional[Sequence[str]] = None,
                 precise_bn: Optional[dict] = None) -> None:
        self._runner = runner
        if precise_bn is not None and not (
                isinstance(precise_bn, dict)
                and set(precise_bn) == {'num_samples'}
                and int(precise_bn['num_samples']) > 0):
            raise ValueError('MultiTaskValLoop: `precise_bn` must be None or '
                             'dict(num_samples=N) with N > 0, got '
                             f'{precise_bn!r}.')
        self.precise_bn = precise_bn
        self._bn_loaders: Dict[str, object] = {}
        self.tasks = list(tasks if tasks is not None else dataloader)
        check_task_dict('val_dataloader', dataloader, self.tasks)
        check_task_dict('val_evaluator', evaluator, self.tasks)
        model = unwrap_model(runner.model)
        unknown = [t for t in self.tasks if t not in model.tasks]
        if unknown:
            raise KeyError(f'MultiTaskValLoop: task(s) {unknown} are not '
                           f'tasks of the model ({list(model.tasks)}).')
        self.dataloaders: Dict[str, DataLoader] = {}
        self.evaluators: Dict[str, Evaluator] = {}
        for task in self.tasks:
            loader = task_entry(dataloader[task], 'val_dataloader', task)
            if isinstance(loader, dict):
                loader = runner.build_dataloader(loader, seed=runner.seed)
            self.dataloaders[task] = loader
            ev = task_entry(evaluator[task], 'val_evaluator', task)
            if not isinstance(ev, Evaluator):
                ev = runner.build_evaluator(ev)
            ev.dataset_meta = getattr(loader.dataset, 'metainfo', None)
            self.evaluators[task] = ev
        self._task = self.tasks[0]

    @property
    def dataloader(self) -> DataLoader:
        """The dataloader of the task being validated."""
        return self.dataloaders[self._task]

    def run(self) -> dict:
        """Validate all tasks; return ``{'<task>/<metric>': value}``."""
        model = unwrap_model(self.runner.model)
        train_task = model.active_task
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        metrics = {}
        try:
            for task in self.tasks:
                self._task = task
                model.active_task = task
                with self.task_statistics(model, task):
                    for idx, data_batch in enumerate(self.dataloaders[task]):
                        self.run_iter(idx, data_batch)
                task_metrics = self.evaluators[task].evaluate(
                    len(self.dataloaders[task].dataset))
                metrics.update({
                    f'{task}/{k}': v
                    for k, v in task_metrics.items()
                })
        finally:
            model.active_task = train_task
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    def task_statistics(self, model, task: str) -> ContextManager:
        """A block in which the backbone has ``task``'s precise BN
        statistics (``precise_bn``), restored on leaving it."""
        if self.precise_bn is None:
            return contextlib.nullcontext()
        if task not in self._bn_loaders:
            loop_cfg = self.runner.cfg.get('train_cfg') or {}
            self._bn_loaders[task] = estimation_loader(
                self.runner, task, loop_cfg.get('loader_overrides'),
                self.runner.seed)
        return task_statistics(model, task, self._bn_loaders[task],
                               self.precise_bn['num_samples'])

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict) -> None:
        self.runner.call_hook(
            'before_val_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.runner.model.val_step(data_batch)
        self.evaluators[self._task].process(
            data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_val_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
