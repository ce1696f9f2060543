# Copyright (c) muscle_mm contributors. All rights reserved.
"""The task x task-iterate accuracy matrix of MUSCLE stage 2, as a hook."""
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook

from muscle_mm.registry import HOOKS
from ..loops import MultiTaskValLoop
from .cl_matrix import AccuracyMatrix

CKPT_KEY = 'accuracy_matrix'


@HOOKS.register_module()
class AccuracyMatrixHook(Hook):
    """Scores every task after every validation of :class:`MultiTaskCLLoop`
    and writes them with each task's forgetting (Sec. 2.2's continual
    learning; the paper reports no forgetting).

    One column per validation, named ``r<round>:<task just trained>``; one
    score per task (its ``score_keys`` metric, default its first), read from
    the ``'<task>/<metric>'`` metrics of :class:`MultiTaskValLoop`. Written
    to ``<work_dir>/<out_name>.{json,png}`` and kept in checkpoints.

    Args:
        score_keys (dict, optional): Task -> metric name. Defaults to None.
        lower_is_better (Sequence[str]): Tasks whose score is an error.
            Defaults to ().
        out_name (str): File name without extension. Defaults to
            ``'cl_accuracy_matrix'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 score_keys: Optional[Dict[str, str]] = None,
                 lower_is_better: Sequence[str] = (),
                 out_name: str = 'cl_accuracy_matrix') -> None:
        self.score_keys = dict(score_keys or {})
        self.lower_is_better = list(lower_is_better)
        self.out_name = out_name
        self.matrix: Optional[AccuracyMatrix] = None
        self._resumed: Optional[dict] = None
        self._training = False

    def before_train(self, runner) -> None:
        tasks = getattr(runner.train_loop, 'tasks', None)
        if tasks is None:  # not a multi-task CL run: nothing to score
            self.matrix = None
            return
        self._training = True
        self.matrix = AccuracyMatrix(tasks, self.lower_is_better)
        if self._resumed is not None:
            self.matrix.load_state_dict(self._resumed)

    def after_train(self, runner) -> None:
        self._training = False

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        # only the validations of a CL run, by the multi-task val loop
        if (self.matrix is None or not self._training
                or not isinstance(runner.val_loop, MultiTaskValLoop)):
            return
        scores = {t: self._score(t, metrics or {}) for t in self.matrix.tasks}
        hub = runner.message_hub
        column = f"r{hub.get_info('cl_round') + 1}:{hub.get_info('cl_task')}"
        self.matrix.add(column, scores)
        self.matrix.dump(runner.work_dir, self.out_name)

    def _score(self, task: str, metrics: dict) -> Optional[float]:
        prefix = f'{task}/'
        ours = {
            k[len(prefix):]: v
            for k, v in metrics.items() if k.startswith(prefix)
        }
        key = self.score_keys.get(task, next(iter(ours), None))
        if key is not None and key not in ours:
            raise KeyError(f'AccuracyMatrixHook: score_keys["{task}"]="{key}"'
                           ' is not a metric of that task; it has '
                           f'{list(ours)}.')
        value = ours.get(key) if key is not None else None
        return None if value is None else float(value)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.matrix is not None:
            checkpoint[CKPT_KEY] = self.matrix.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner.cfg.get('resume'):
            return  # load_from starts a new matrix, as a new message hub
        state = checkpoint.get(CKPT_KEY)
        if state is None:  # saved before the matrix was a hook
            info = checkpoint.get('message_hub', {}).get('runtime_info', {})
            state = (info.get('cl_loop') or {}).get('matrix')
        self._resumed = state
        if state is not None and self.matrix is not None:
            self.matrix.load_state_dict(state)
