# Copyright (c) muscle_mm contributors. All rights reserved.
import copy
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader

from muscle_mm.registry import LOOPS
from .cl_matrix import AccuracyMatrix
from .multitask_val_loop import MultiTaskValLoop
from .utils import check_task_dict, task_entry, unwrap_model

STATE_KEY = 'cl_loop'


@LOOPS.register_module()
class MultiTaskCLLoop(BaseLoop):
    """Multi-task continual learning: rounds of task-iterates (Sec. 2.2).

    ``run()`` -> ``run_round()`` -> ``run_task_iterate()`` -> ``run_iter()``.
    Each round visits ``tasks`` in an order that is reshuffled per round
    (seeded by the experiment seed and the round) or kept as given; each
    task-iterate makes the task active in the :class:`MultiTaskModel` and
    trains ``epochs_per_task`` epochs on its dataloader.

    A task-iterate is one "epoch" for the hooks: ``before_train_epoch`` and
    ``after_train_epoch`` wrap it (so ``L2SPHook`` snapshots w0 there and a
    ``CheckpointHook(interval=1)`` saves after every task-iterate), and
    ``epoch``/``max_epochs`` count task-iterates.

    ``train_dataloader`` is a dict of task name -> dataloader config, or ->
    the path of a dataset config whose ``train_dataloader`` is used (the
    task dataset configs all define the same names, so one config cannot
    inherit them all); the loop builds each once with the runner. Use
    ``persistent_workers=True`` (e.g. through ``loader_overrides``), so
    switching tasks does not restart workers.

    Exact resume: the position to continue from (round, index in the order,
    the order itself) and the accuracy matrix are put in the message hub's
    runtime info before every checkpoint, so ``--resume`` continues
    mid-round. Random generators are reseeded from ``(seed, task-iterate)``
    at the start of every task-iterate, so a resumed run draws the same
    numbers (sampler order, mmdet's proposal sampling, main-process
    augmentation). Randomness inside persistent dataloader workers is not
    replayed; use ``num_workers=0`` or non-persistent workers where a run
    must be bit-exact across a resume.

    Validation (``val_cfg=dict(type='MultiTaskValLoop')``) of every task runs
    after each task-iterate (``val_interval='iterate'``) or each round
    (``'round'``), before the checkpoint. One score per task (``score_keys``,
    default: its first metric) fills the accuracy matrix (task x iterate);
    it and each task's forgetting are written as
    ``cl_accuracy_matrix.{json,png}`` in the work dir.

    Args:
        runner (Runner): The runner.
        dataloader (dict): Task name -> dataloader, its config or the path
            of a dataset config.
        tasks (Sequence[str]): Task names, as in the model's ``tasks``.
        rounds (int): Number of rounds. Defaults to 10 (the paper's).
        epochs_per_task (int): Epochs per task-iterate. Defaults to 1.
        reshuffle (bool): Reshuffle the task order every round. Defaults to
            True (MUSCLE); False gives MUSCLE--'s fixed order.
        val_interval (str, optional): ``'iterate'``, ``'round'`` or None.
        score_keys (dict, optional): Task -> metric name for the matrix.
        lower_is_better (Sequence[str]): Tasks whose score is an error.
        reseed (bool): Reseed RNGs per task-iterate. Defaults to True.
        loader_overrides (dict, optional): Keys set in every task's train
            dataloader config, e.g. ``dict(num_workers=2,
            persistent_workers=True, drop_last=True)`` (a last batch of one
            image breaks BatchNorm in DeepLabV3's image pooling).
    """

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[dict, str, DataLoader]],
                 tasks: Sequence[str],
                 rounds: int = 10,
                 epochs_per_task: int = 1,
                 reshuffle: bool = True,
                 val_interval: Optional[str] = 'iterate',
                 score_keys: Optional[Dict[str, str]] = None,
                 lower_is_better: Sequence[str] = (),
                 reseed: bool = True,
                 loader_overrides: Optional[dict] = None) -> None:
        self._runner = runner
        self.tasks: List[str] = list(tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError('MultiTaskCLLoop: `tasks` must be a non-empty '
                             f'list of distinct names, got {tasks!r}.')
        if rounds < 1 or epochs_per_task < 1:
            raise ValueError('MultiTaskCLLoop: `rounds` and '
                             '`epochs_per_task` must be >= 1, got '
                             f'{rounds} and {epochs_per_task}.')
        if val_interval not in ('iterate', 'round', None):
            raise ValueError("MultiTaskCLLoop: `val_interval` must be "
                             f"'iterate', 'round' or None, got "
                             f'{val_interval!r}.')
        model = unwrap_model(runner.model)
        model_tasks = getattr(model, 'tasks', None)
        if not hasattr(model, 'active_task') or model_tasks is None:
            raise TypeError('MultiTaskCLLoop needs a MultiTaskModel (with '
                            '`tasks` and `active_task`), got '
                            f'{type(model).__name__}.')
        unknown = [t for t in self.tasks if t not in model_tasks]
        if unknown:
            raise KeyError(f'MultiTaskCLLoop: unknown task(s) {unknown} in '
                           '`train_cfg.tasks`; the model defines '
                           f'{list(model_tasks)}.')
        check_task_dict('train_dataloader', dataloader, self.tasks)

        self.rounds = rounds
        self.epochs_per_task = epochs_per_task
        self.reshuffle = reshuffle
        self.val_interval = val_interval
        self.score_keys = dict(score_keys or {})
        self.reseed = reseed
        self.stop_training = False
        self.dataloaders: Dict[str, DataLoader] = {}
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        for task in self.tasks:
            loader = task_entry(dataloader[task], 'train_dataloader', task)
            if isinstance(loader, dict):
                loader = copy.deepcopy(loader)
                loader.update(loader_overrides or {})
                loader = runner.build_dataloader(
                    loader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            if len(loader) == 0:
                raise ValueError(
                    f'MultiTaskCLLoop: task "{task}" has no training '
                    f'iteration ({len(loader.dataset)} samples, batch size '
                    f'{loader.batch_size}, world size {get_world_size()}, '
                    'drop_last may drop them all); check its train split.')
            self.dataloaders[task] = loader
        self.matrix = AccuracyMatrix(self.tasks, lower_is_better)

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

    @property
    def iters_per_round(self) -> int:
        """Iterations of one round on this process (Eq. 1's T per round)."""
        return self._max_iters // self.rounds

    @property
    def task_iterates_per_round(self) -> int:
        return len(self.tasks)

    def task_iters(self, task: str) -> int:
        """Iterations of one task-iterate of ``task`` on this process."""
        return self.epochs_per_task * len(self.dataloaders[task])

    def task_iterate_position(self, iteration: int) -> Tuple[int, int, int]:
        """(task-iterate index, iterations into it, its length) of the
        0-based ``iteration``, from the rounds' orders: a closed form, so a
        resumed run and a scheduler agree on it without shared state."""
        round_idx, within = divmod(iteration, self.iters_per_round)
        for position, task in enumerate(self.round_order(round_idx)):
            length = self.task_iters(task)
            if within < length:
                return (round_idx * len(self.tasks) + position, within,
                        length)
            within -= length
        raise AssertionError('unreachable: a round holds every task')

    def describe_round(self) -> str:
        """One round's iterations per task, e.g. for error messages."""
        parts = ' + '.join(f'{t} {self.task_iters(t)}' for t in self.tasks)
        return f'{parts} at world size {get_world_size()}'

    def round_order(self, round_idx: int) -> List[str]:
        """The task order of a round: reshuffled from (seed, round) or not."""
        if not self.reshuffle:
            return list(self.tasks)
        seed = self.runner.seed if self.runner.seed is not None else 0
        rng = np.random.default_rng([int(seed), int(round_idx)])
        return [self.tasks[i] for i in rng.permutation(len(self.tasks))]

    def _save_state(self, next_round: int, next_position: int,
                    next_order: List[str]) -> None:
        self.runner.message_hub.update_info(
            STATE_KEY,
            dict(
                round=next_round,
                position=next_position,
                order=list(next_order),
                matrix=self.matrix.state_dict()))

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
        self.matrix.load_state_dict(state['matrix'])
        self.runner.logger.info(
            f'MultiTaskCLLoop resumes at round {self._round + 1}/'
            f'{self.rounds}, position {self._position} of {self._order}.')

    # ------------------------------------------------------------ loops
    def run(self) -> torch.nn.Module:
        """Train all rounds."""
        self._restore_state()
        self._bind_schedulers()
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
        self._drop_other_task_scalars(task)

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
            self._validate(task)

        if last_of_round:
            nxt = (self._round + 1, 0, self.round_order(self._round + 1))
        else:
            nxt = (self._round, self._position + 1, self._order)
        self._save_state(*nxt)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _drop_other_task_scalars(self, task: str) -> None:
        """Keep the log lines to the active task's losses.

        Loss keys are ``train/<task>.<loss>``; without this, the smoothed
        values of the previous tasks would be printed again on every line.
        Each value was already written to the visualizer backends.
        """
        hub = self.runner.message_hub
        others = tuple(f'train/{t}.' for t in self.tasks if t != task)
        for key in [k for k in hub.log_scalars if k.startswith(others)]:
            hub.log_scalars.pop(key)

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
    def _bind_schedulers(self) -> None:
        """Give schedulers whose period is a round or a task-iterate
        (``CyclicCosineLR``) this run's geometry, and check numeric ones."""
        schedulers = self.runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers:
            if hasattr(scheduler, 'bind_loop'):
                scheduler.bind_loop(self)

    def _reseed(self) -> None:
        seed = (self.runner.seed or 0) + self._epoch
        if self.runner._randomness_cfg.get('diff_rank_seed', False):
            seed += get_rank() * self._max_epochs
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _validate(self, task: str) -> None:
        metrics = self.runner.val_loop.run()
        if not isinstance(self.runner.val_loop, MultiTaskValLoop):
            return
        scores = {}
        for t in self.tasks:
            prefix = f'{t}/'
            task_metrics = {
                k[len(prefix):]: v
                for k, v in metrics.items() if k.startswith(prefix)
            }
            key = self.score_keys.get(t, next(iter(task_metrics), None))
            if key is not None and key not in task_metrics:
                raise KeyError(f'MultiTaskCLLoop: score_keys["{t}"]="{key}" '
                               'is not a metric of that task; it has '
                               f'{list(task_metrics)}.')
            value = task_metrics.get(key) if key is not None else None
            scores[t] = None if value is None else float(value)
        self.matrix.add(f'r{self._round + 1}:{task}', scores)
        self.matrix.dump(self.runner.work_dir)
