# Copyright (c) muscle_mm contributors. All rights reserved.
import random
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import broadcast_object_list, get_rank
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader

from muscle_mm.registry import LOOPS
from .cl_schedule import CLScheduleMixin
from .utils import (build_task_loader, check_multitask_model,
                    check_task_dict, unwrap_model)

STATE_KEY = 'cl_loop'


@LOOPS.register_module()
class MultiTaskCLLoop(CLScheduleMixin, BaseLoop):
    """Multi-task continual learning: rounds of task-iterates (Sec. 2.2).

    ``run()`` -> ``run_round()`` -> ``run_task_iterate()`` -> ``run_iter()``.
    Each round visits ``tasks`` in an order reshuffled per round from (seed,
    round) ("reshuffle the order of tasks in every round") or kept as given
    (MUSCLE--). A task-iterate makes the task active in the
    :class:`MultiTaskModel` and trains it ``epochs_per_task`` epochs; for the
    hooks it is one epoch (``before/after_train_epoch``, ``epoch``). Round,
    position and order are saved in the message hub for an exact resume
    (``docs/cl.md``); scores are kept by :class:`AccuracyMatrixHook`.

    Args:
        runner (Runner): The runner.
        dataloader (dict): Task name -> dataloader, its config or the path
            of a dataset config (whose ``train_dataloader`` is used).
        tasks (Sequence[str], optional): Task names, as in the model's
            ``tasks``. Defaults to the keys of ``dataloader``, in order.
        rounds (int): Number of rounds. Defaults to 10 (the paper's).
        epochs_per_task (int): Epochs per task-iterate. Defaults to 1.
        reshuffle (bool): Reshuffle the task order every round. Defaults to
            True (MUSCLE); False gives MUSCLE--'s fixed order.
        val_interval (str, optional): Validate every task after each
            ``'iterate'`` or ``'round'``, or never (None).
        reseed (bool): Reseed RNGs from (seed, task-iterate) at the start of
            each task-iterate. Defaults to True.
        loader_overrides (dict, optional): Keys set in every task's train
            dataloader config, e.g. ``dict(drop_last=True)``.
    """

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[dict, str, DataLoader]],
                 tasks: Optional[Sequence[str]] = None,
                 rounds: int = 10,
                 epochs_per_task: int = 1,
                 reshuffle: bool = True,
                 val_interval: Optional[str] = 'iterate',
                 reseed: bool = True,
                 loader_overrides: Optional[dict] = None) -> None:
        self._runner = runner
        self.tasks: List[str] = list(
            tasks if tasks is not None else dataloader)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError('MultiTaskCLLoop: `tasks` must be a non-empty '
                             f'list of distinct names, got {self.tasks!r}.')
        if rounds < 1 or epochs_per_task < 1:
            raise ValueError('MultiTaskCLLoop: `rounds` and '
                             '`epochs_per_task` must be >= 1, got '
                             f'{rounds} and {epochs_per_task}.')
        if val_interval not in ('iterate', 'round', None):
            raise ValueError("MultiTaskCLLoop: `val_interval` must be "
                             f"'iterate', 'round' or None, got "
                             f'{val_interval!r}.')
        check_multitask_model(runner.model, self.tasks, 'MultiTaskCLLoop',
                              '`train_cfg.tasks` (or `train_dataloader`)')
        check_task_dict('train_dataloader', dataloader, self.tasks)

        self.rounds = rounds
        self.epochs_per_task = epochs_per_task
        self.reshuffle = reshuffle
        self.val_interval = val_interval
        self.reseed = reseed
        self.stop_training = False
        self.dataloaders: Dict[str, DataLoader] = {}
        randomness = runner.cfg.get('randomness') or {}
        self._diff_rank_seed = randomness.get('diff_rank_seed', False)
        # The experiment seed, the same on every rank: with diff_rank_seed
        # mmengine adds the rank to runner.seed, and ranks that shuffled the
        # tasks differently would average gradients of different tasks
        seed = [runner.seed if runner.seed is not None else 0]
        broadcast_object_list(seed)
        self.seed: int = int(seed[0])
        for task in self.tasks:
            self.dataloaders[task] = build_task_loader(
                runner, dataloader[task], task, loader_overrides,
                self._diff_rank_seed)

        self._round = 0
        self._position = 0
        self._order = self.round_order(0)
        self._active = self._order[0]
        self._epoch = 0
        self._iter = 0
        self._max_epochs = rounds * len(self.tasks)
        self._max_iters = rounds * epochs_per_task * sum(
            len(dl) for dl in self.dataloaders.values())

    # ------------------------------------------------------------ state
    @property
    def dataloader(self) -> DataLoader:
        """The dataloader of the active task (read by the runner's hooks)."""
        return self.dataloaders[self._active]

    @property
    def round(self) -> int:
        """Index of the current round (0-based)."""
        return self._round

    @property
    def task_position(self) -> int:
        """Index of the current task-iterate in ``order``."""
        return self._position

    @property
    def order(self) -> List[str]:
        """Task order of the current round."""
        return list(self._order)

    @property
    def active_task(self) -> str:
        return self._active

    @property
    def epoch(self) -> int:
        """Number of task-iterates done."""
        return self._epoch

    @property
    def iter(self) -> int:
        return self._iter

    @property
    def max_epochs(self) -> int:
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        return self._max_iters

    def _save_state(self, next_round: int, next_position: int,
                    next_order: List[str]) -> None:
        self.runner.message_hub.update_info(
            STATE_KEY,
            dict(round=next_round, position=next_position,
                 order=list(next_order)))

    def _restore_state(self) -> None:
        state = self.runner.message_hub.get_info(STATE_KEY)
        if state is None:
            return
        unknown = [t for t in state['order'] if t not in self.tasks]
        if unknown:
            raise KeyError('MultiTaskCLLoop: the resumed checkpoint orders '
                           f'tasks {state["order"]}, but {unknown} are not in '
                           f'`train_cfg.tasks` ({self.tasks}).')
        self._round = state['round']
        self._position = state['position']
        self._order = list(state['order'])
        self.runner.logger.info(
            f'MultiTaskCLLoop resumes at round {self._round + 1}/'
            f'{self.rounds}, position {self._position} of {self._order}.')

    # ------------------------------------------------------------ loops
    def run(self) -> torch.nn.Module:
        """Train all rounds."""
        self._restore_state()
        self.bind_schedulers()
        self.runner.call_hook('before_train')
        while self._round < self.rounds and not self.stop_training:
            self.run_round()
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_round(self) -> None:
        """Visit the remaining tasks of the current round in its order."""
        self.runner.logger.info(f'CL round {self._round + 1}/{self.rounds}: '
                                f'task order {self._order}')
        while self._position < len(self._order) and not self.stop_training:
            self.run_task_iterate()
            self._position += 1
        if self._position == len(self._order):
            self._round += 1
            self._position = 0
            self._order = self.round_order(self._round)

    def run_task_iterate(self) -> None:
        """Train the task at ``task_position`` for ``epochs_per_task``."""
        task = self._order[self._position]
        self._active = task
        unwrap_model(self.runner.model).active_task = task
        self.runner.message_hub.update_info('cl_task', task)
        self.runner.message_hub.update_info('cl_round', self._round)
        self.runner.logger.info(
            f'CL round {self._round + 1}/{self.rounds}, task-iterate '
            f'{self._position + 1}/{len(self._order)}: task "{task}"')
        if self.reseed:
            self._reseed()

        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        loader = self.dataloaders[task]
        for sub_epoch in range(self.epochs_per_task):
            sampler = getattr(loader, 'sampler', None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self._epoch * self.epochs_per_task +
                                  sub_epoch)
            for idx, data_batch in enumerate(loader):
                self.run_iter(idx, data_batch)

        last_of_round = self._position == len(self._order) - 1
        if self.runner.val_loop is not None and (
                self.val_interval == 'iterate' or
            (self.val_interval == 'round' and last_of_round)):
            self.runner.val_loop.run()

        if last_of_round:
            nxt = (self._round + 1, 0, self.round_order(self._round + 1))
        else:
            nxt = (self._round, self._position + 1, self._order)
        self._save_state(*nxt)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx: int, data_batch: dict) -> None:
        """Train one batch of the active task."""
        self.runner.call_hook(
            'before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.runner.model.train_step(
            data_batch, optim_wrapper=self.runner.optim_wrapper)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1

    # ------------------------------------------------------------ helpers
    def _reseed(self) -> None:
        seed = self.seed + self._epoch
        if self._diff_rank_seed:
            seed += get_rank() * self._max_epochs
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
