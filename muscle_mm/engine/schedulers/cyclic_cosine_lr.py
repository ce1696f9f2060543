# Copyright (c) muscle_mm contributors. All rights reserved.
"""Cyclic cosine schedule of MUSCLE stage 2 (Eq. 1, Sec. 2.2)."""
import math
from typing import Callable, List, Optional, Tuple, Union

from mmengine.optim import BaseOptimWrapper
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from torch.optim import Optimizer

from muscle_mm.registry import PARAM_SCHEDULERS

#: Periods that :class:`MultiTaskCLLoop` derives at run time.
LOOP_PERIODS = ('round', 'task_iterate')


def check_period(period: Union[int, str],
                 by_epoch: bool,
                 iters_per_round: int,
                 iterates_per_round: int,
                 round_description: str,
                 name: str = 'CyclicCosineLR') -> int:
    """Steps of one CL round in the scheduler's unit; raises if a numeric
    ``period`` is not a whole number of rounds (the waves would drift)."""
    per_round = iterates_per_round if by_epoch else iters_per_round
    unit = 'task-iterates' if by_epoch else 'iterations'
    if isinstance(period, int) and period % per_round:
        raise ValueError(
            f'{name}: period={period} {unit}, but one round of this run is '
            f'{per_round} {unit} per process ({round_description}), so the '
            "cosine waves would drift across rounds. Use period='round' (one "
            "wave per round, derived at run time) or period='task_iterate' "
            '(one per task-iterate), or a whole number of rounds.')
    return per_round


@PARAM_SCHEDULERS.register_module()
class CyclicCosineParamScheduler(_ParamScheduler):
    r"""Cyclic cosine schedule of any optimizer parameter (MUSCLE Eq. 1).

    .. math::
        \eta_t = \eta_{min}^i + \frac{1}{2}(\eta_{max} - \eta_{min})
        \left(1 + \cos\left(\frac{t}{T} \cdot 2\pi\right)\right),
        \quad i = \lfloor t / T \rfloor

    where :math:`t` counts scheduler steps from ``begin``, :math:`\eta_{max}`
    is the group's initial value (``initial_lr`` for the learning rate) and
    :math:`T` is ``period``. Eq. 1 is ambiguous; what we chose:

    - **Full wave (2π), as written.** Within one period the value goes
      max → min (at ``t = T/2``) → back to max, unlike SGDR's restart
      schedule (``π·t/T``, mmengine's ``CosineRestartLR``). ``T`` is therefore
      one full cycle; for an SGDR-like half wave use ``CosineRestartLR``.
    - **η_min^i vs η_min.** We read η_min^i as the minimum of the i-th cycle,
      ``eta_min * eta_min_decay ** i``, and keep the amplitude on the
      un-indexed η_min exactly as written. The default ``eta_min_decay=1``
      makes both the same, i.e. a plain periodic cosine.
    - **T_i** is defined in the text but never used in Eq. 1; there is one
      period ``T`` for the whole schedule.

    ``period='round'`` or ``'task_iterate'`` is bound by
    :class:`MultiTaskCLLoop` at run time (``bind_loop``); a numeric period
    under that loop must be a whole number of rounds. The value is computed
    in closed form from the step, so a resumed run continues the cycle; see
    ``docs/cl.md`` for the two readings of T and how the phase is counted.

    Args:
        optimizer (Optimizer or BaseOptimWrapper): Wrapped optimizer.
        param_name (str): Name of the parameter to schedule, e.g. ``lr``.
        period (int or str): ``T`` of Eq. 1 in steps (iterations, or
            epochs when ``by_epoch=True``; in the CL loop an epoch is one
            task-iterate), or ``'round'`` / ``'task_iterate'`` (iterations
            only) to take it from :class:`MultiTaskCLLoop`.
        eta_min (float, optional): ``η_min``. Defaults to None, which means
            0 unless ``eta_min_ratio`` is given.
        eta_min_ratio (float, optional): ``η_min`` as a ratio of each group's
            ``η_max``. Mutually exclusive with ``eta_min``. Defaults to None.
        eta_min_decay (float): Factor applied to ``η_min`` at every new cycle
            (``η_min^i``). Defaults to 1 (no decay).
        begin (int): Step at which the schedule starts. Defaults to 0.
        end (int): Step at which it stops. Defaults to INF.
        last_step (int): Index of the last step, for resuming without a state
            dict. Defaults to -1.
        by_epoch (bool): Whether steps are epochs. Defaults to True.
        verbose (bool): Whether to print every update. Defaults to False.
    """

    def __init__(self,
                 optimizer: Union[Optimizer, BaseOptimWrapper],
                 param_name: str,
                 period: Union[int, str],
                 eta_min: Optional[float] = None,
                 eta_min_ratio: Optional[float] = None,
                 eta_min_decay: float = 1.0,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False):
        name = type(self).__name__
        if isinstance(period, str):
            if period not in LOOP_PERIODS:
                raise ValueError(f'{name}: `period` must be a positive int '
                                 f'or one of {LOOP_PERIODS}, got {period!r}.')
            if by_epoch and period == 'task_iterate':
                raise ValueError(f"{name}: period='task_iterate' restarts the "
                                 'cosine within each task-iterate, so it needs '
                                 'by_epoch=False (steps are iterations).')
        elif not isinstance(period, int) or isinstance(period, bool) \
                or period <= 0:
            raise ValueError(f'{name}: `period` (T of Eq. 1) '
                             f'must be a positive int number of steps, but '
                             f'got {period!r}.')
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError(f'{type(self).__name__}: give `eta_min` or '
                             f'`eta_min_ratio`, not both (got {eta_min} and '
                             f'{eta_min_ratio}).')
        if eta_min_decay <= 0:
            raise ValueError(f'{type(self).__name__}: `eta_min_decay` must be '
                             f'> 0, but got {eta_min_decay}.')
        self.period = period
        # step -> (cycle index, t within the cycle, T); set by bind_loop for
        # the loop-derived periods, never saved in checkpoints
        self._locate: Optional[Callable[[int], Tuple[int, int, int]]] = None
        self.eta_min = 0. if eta_min is None and eta_min_ratio is None \
            else eta_min
        self.eta_min_ratio = eta_min_ratio
        self.eta_min_decay = eta_min_decay
        super().__init__(
            optimizer,
            param_name=param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              period: Union[int, str],
                              begin: int = 0,
                              end: int = INF,
                              by_epoch: bool = True,
                              epoch_length: Optional[int] = None,
                              **kwargs):
        """Build an iter-based instance from an epoch-based config
        (``convert_to_iter_based=True``)."""
        assert by_epoch, 'Only epoch-based kwargs whose `by_epoch=True` can ' \
                         'be converted to iter-based.'
        assert epoch_length is not None and epoch_length > 0, \
            f'`epoch_length` must be a positive integer, ' \
            f'but got {epoch_length}.'
        begin = int(begin * epoch_length)
        if end != INF:
            end = int(end * epoch_length)
        return cls(
            *args,
            period=period if isinstance(period, str) else int(period *
                                                              epoch_length),
            begin=begin,
            end=end,
            by_epoch=False,
            **kwargs)

    def bind_loop(self, loop) -> None:
        """Take ``period`` from a :class:`MultiTaskCLLoop`, or check it.

        Called by the loop before its first iteration. ``'round'`` becomes
        the iterations (or task-iterates, ``by_epoch=True``) of one round on
        this process; ``'task_iterate'`` follows each task-iterate's own
        length. A numeric period must be a whole number of rounds.
        """
        per_round = check_period(self.period, self.by_epoch,
                                 loop.iters_per_round,
                                 loop.task_iterates_per_round,
                                 loop.describe_round(), type(self).__name__)
        if self.period == 'round':
            self._locate = lambda step: (*divmod(step, per_round), per_round)
        elif self.period == 'task_iterate':
            self._locate = loop.task_iterate_position

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop('_locate', None)  # bound to the live loop
        return state

    def _position(self) -> Tuple[int, int, int]:
        """(cycle index, t within the cycle, T) of the current step."""
        if isinstance(self.period, int):
            return (*divmod(self.last_step, self.period), self.period)
        if self._locate is not None:
            # the loop's phase: count from the start of training, not `begin`
            return self._locate(self.last_step + self.begin)
        if self.last_step == 0:  # built before the loop binds it: t = 0
            return 0, 0, 1
        raise RuntimeError(
            f"{type(self).__name__}: period='{self.period}' is taken from "
            'MultiTaskCLLoop at run time; this run uses another train loop '
            '(give a number of steps instead).')

    def _get_value(self) -> List[float]:
        """Eq. 1 in closed form at the current step."""
        cycle, t_in_cycle, period = self._position()
        cos_term = 1 + math.cos(2 * math.pi * t_in_cycle / period)
        values = []
        for eta_max in self.base_values:
            eta_min = (
                self.eta_min if self.eta_min_ratio is None else eta_max *
                self.eta_min_ratio)
            eta_min_i = eta_min * self.eta_min_decay**cycle
            values.append(eta_min_i + 0.5 * (eta_max - eta_min) * cos_term)
        return values


@PARAM_SCHEDULERS.register_module()
class CyclicCosineLR(LRSchedulerMixin, CyclicCosineParamScheduler):
    r"""Cyclic cosine learning rate of MUSCLE stage 2 (Eq. 1, Sec. 2.2).

    :math:`\eta_{max}` is the optimizer's initial ``lr``; see
    :class:`CyclicCosineParamScheduler` for the formula and how its
    ambiguities were resolved.

    Args:
        optimizer (Optimizer or BaseOptimWrapper): Wrapped optimizer.
        period (int or str): ``T`` of Eq. 1, steps per full cosine cycle,
            or ``'round'`` / ``'task_iterate'`` from the CL loop.
        eta_min (float, optional): Minimum learning rate. Defaults to None
            (0 unless ``eta_min_ratio`` is given).
        eta_min_ratio (float, optional): Minimum as a ratio of the initial
            learning rate. Defaults to None.
        eta_min_decay (float): Per-cycle factor on the minimum. Defaults to 1.
        begin (int): Step at which the schedule starts. Defaults to 0.
        end (int): Step at which it stops. Defaults to INF.
        last_step (int): Index of the last step. Defaults to -1.
        by_epoch (bool): Whether steps are epochs. Defaults to True.
        verbose (bool): Whether to print every update. Defaults to False.
    """
