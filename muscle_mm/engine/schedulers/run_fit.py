# Copyright (c) muscle_mm contributors. All rights reserved.
"""Does a schedule fit the run it is given? Warm-ups and LR milestones
placed in iterations of this run, for the preflight.

An epoch has ``ceil(ceil(N / world_size) / batch)`` iterations on each
process, so a warm-up written in iterations covers 8 times more of the run
on 8 GPUs than on one; milestones written in epochs stay put, but may fall
outside a run shortened with ``train_cfg.max_epochs``.
"""
from typing import List, Sequence, Union

#: Schedulers that ramp the LR at the start of a run.
WARMUPS = ('LinearLR', 'ConstantLR', 'LinearParamScheduler',
           'ConstantParamScheduler')
#: A warm-up that ends later than this fraction of the run is an error.
MAX_WARMUP_FRACTION = 0.5


def _as_list(param_scheduler) -> List[dict]:
    if param_scheduler is None:
        return []
    if isinstance(param_scheduler, dict):
        return [param_scheduler]
    return list(param_scheduler)


def _name(sched: dict) -> str:
    return str(sched.get('type', '?')).split('.')[-1]


def schedule_problems(param_scheduler: Union[dict, Sequence[dict], None],
                      iters_per_epoch: int, max_epochs: int,
                      world_size: int) -> List[str]:
    """What in an epoch-based run's ``param_scheduler`` does not fit it.

    Args:
        param_scheduler: The config's ``param_scheduler``.
        iters_per_epoch: Iterations of one epoch on each process.
        max_epochs: Epochs of the run.
        world_size: Processes (for the messages).

    Returns:
        list[str]: One sentence per problem; empty when the schedule fits.
    """
    run = iters_per_epoch * max_epochs
    where = (f'the run has {max_epochs} epochs x {iters_per_epoch} '
             f'iterations = {run} per process at world size {world_size}')
    problems = []
    for sched in _as_list(param_scheduler):
        name = _name(sched)
        unit = iters_per_epoch if sched.get('by_epoch', True) else 1
        begin = sched.get('begin', 0) * unit
        end = sched.get('end')
        end = run if end is None or end >= 1e9 else end * unit
        if begin >= run:
            problems.append(f'{name} starts at iteration {begin:g}, after '
                            f'the run ends ({where})')
        if end > run:
            problems.append(f'{name} ends at iteration {end:g}, after the run'
                            f' ends ({where})')
        if name in WARMUPS and begin == 0 and end > MAX_WARMUP_FRACTION * run:
            problems.append(
                f'the warm-up ({name}) ends at iteration {end:g}, '
                f'{100 * end / run:.0f}% into the run ({where}); write it in '
                'epochs (by_epoch=True, convert_to_iter_based=True) so it '
                'keeps its share of the run on any number of GPUs')
        for milestone in sched.get('milestones', ()):
            at = begin + milestone * unit
            if not begin < at < min(end, run):
                problems.append(
                    f'{name} milestone {milestone} (iteration {at:g}) is not '
                    f'inside the run ({where})')
    warmup_end = max((
        s.get('end', 0) * (iters_per_epoch if s.get('by_epoch', True) else 1)
        for s in _as_list(param_scheduler) if _name(s) in WARMUPS),
                     default=0)
    for sched in _as_list(param_scheduler):
        unit = iters_per_epoch if sched.get('by_epoch', True) else 1
        for milestone in sched.get('milestones', ()):
            at = sched.get('begin', 0) * unit + milestone * unit
            if at < warmup_end:
                problems.append(
                    f'{_name(sched)} milestone {milestone} (iteration '
                    f'{at:g}) falls inside the warm-up, which ends at '
                    f'iteration {warmup_end:g} ({where})')
    return problems
