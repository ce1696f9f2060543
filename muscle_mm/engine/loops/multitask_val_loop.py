# Copyright (c) muscle_mm contributors. All rights reserved.
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader

from muscle_mm.registry import LOOPS
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
    """

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[dict, str]],
                 evaluator: Dict[str, Union[dict, str]],
                 tasks: Optional[Sequence[str]] = None) -> None:
        self._runner = runner
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
