# Copyright (c) muscle_mm contributors. All rights reserved.
"""Time to switch tasks in MultiTaskCLLoop: persistent vs fresh workers.

A task switch costs the wait for the new task's first batch (plus setting
``model.active_task``, which is free). With ``persistent_workers=True`` the
workers of every task's dataloader are started once and only refill their
queues; without, each task-iterate starts (forks) new workers, which then
re-import nothing but must rebuild their prefetch from scratch.

Run from the folder that holds the demo data (``data/demo``)::

    python tools/analysis_tools/benchmark_task_switch.py \
        configs/muscle/demo/cl_r18_demo.py --num-workers 2 --rounds 3

It prints, per setting, the mean and max first-batch wait over the switches
of rounds 2.. (round 1 starts the persistent workers), and the ratio
fresh / persistent measured in the same run. Goal: <= 1 s per switch.
"""
import argparse
import copy
import time
from typing import Dict, List

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a MultiTaskCLLoop config')
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument(
        '--rounds',
        type=int,
        default=3,
        help='>= 2: round 1 starts the workers and is not timed')
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error('--rounds must be >= 2 (round 1 only starts the '
                     f'workers and is not timed), got {args.rounds}')
    return args


def build_loaders(cfg: Config, num_workers: int,
                  persistent: bool) -> Dict[str, object]:
    from muscle_mm.engine.loops.utils import cl_tasks, task_entry
    loaders = {}
    for task in cl_tasks(cfg):
        loader = copy.deepcopy(
            task_entry(cfg.train_dataloader[task], 'train_dataloader', task))
        loader.update(cfg.train_cfg.get('loader_overrides') or {})
        loader.update(num_workers=num_workers, persistent_workers=persistent)
        loaders[task] = Runner.build_dataloader(loader, seed=0)
    return loaders


def time_switches(loaders: Dict[str, object], rounds: int) -> List[float]:
    """First-batch waits of every task-iterate after round 1."""
    waits = []
    tasks = list(loaders)
    for r in range(rounds):
        for task in tasks[r % len(tasks):] + tasks[:r % len(tasks)]:
            start = time.perf_counter()
            batches = iter(loaders[task])
            next(batches)
            if r > 0:
                waits.append(time.perf_counter() - start)
            for _ in batches:  # the rest of the epoch, untimed
                pass
    return waits


def main() -> None:
    args = parse_args()
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    DefaultScope.get_instance('benchmark_task_switch', scope_name='muscle_mm')
    cfg = Config.fromfile(args.config)
    results = {}
    for persistent in (True, False):
        loaders = build_loaders(cfg, args.num_workers, persistent)
        waits = time_switches(loaders, args.rounds)
        results[persistent] = waits
        name = 'persistent' if persistent else 'fresh'
        print(f'{name:>10} workers ({args.num_workers}/task): '
              f'{len(waits)} switches, mean {sum(waits) / len(waits):.3f} s,'
              f' max {max(waits):.3f} s')
        del loaders
    mean = {k: sum(v) / len(v) for k, v in results.items()}
    print(f'ratio fresh / persistent (mean first-batch wait): '
          f'{mean[False] / mean[True]:.1f}x; goal <= 1 s per switch: '
          f'{"met" if max(results[True]) <= 1.0 else "NOT met"}')


if __name__ == '__main__':
    main()
