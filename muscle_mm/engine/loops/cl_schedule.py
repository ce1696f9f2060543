# Copyright (c) muscle_mm contributors. All rights reserved.
"""The arithmetic of a CL schedule: round orders and where an iteration
falls, in closed form so a resumed run and a scheduler agree on it."""
from typing import List, Tuple

import numpy as np
from mmengine.dist import get_world_size


class CLScheduleMixin:
    """Round orders and task-iterate lengths of :class:`MultiTaskCLLoop`.

    Needs ``tasks``, ``rounds``, ``reshuffle``, ``epochs_per_task``,
    ``dataloaders``, ``max_iters``, ``seed`` (the experiment's, equal on
    every rank) and ``runner`` on the loop; hands the
    geometry to schedulers with ``bind_loop`` (``CyclicCosineLR``).
    """

    @property
    def iters_per_round(self) -> int:
        """Iterations of one round on this process (Eq. 1's T per round)."""
        return self.max_iters // self.rounds

    @property
    def task_iterates_per_round(self) -> int:
        return len(self.tasks)

    def task_iters(self, task: str) -> int:
        """Iterations of one task-iterate of ``task`` on this process."""
        return self.epochs_per_task * len(self.dataloaders[task])

    def task_iterate_position(self, iteration: int) -> Tuple[int, int, int]:
        """(task-iterate index, iterations into it, its length) of the
        0-based ``iteration``."""
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
        """The task order of a round: reshuffled from (experiment seed,
        round) or not; the same on every rank."""
        if not self.reshuffle:
            return list(self.tasks)
        rng = np.random.default_rng([self.seed, int(round_idx)])
        return [self.tasks[i] for i in rng.permutation(len(self.tasks))]

    def bind_schedulers(self) -> None:
        """Give schedulers whose period is a round or a task-iterate
        (``CyclicCosineLR``) this run's geometry, and check numeric ones."""
        schedulers = self.runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers:
            if hasattr(scheduler, 'bind_loop'):
                scheduler.bind_loop(self)
