# Copyright (c) muscle_mm contributors. All rights reserved.
"""The run's geometry in every checkpoint; a resume on another one stops.

mmengine saves each scheduler with the ``end`` it resolved from the run's
iterations, and the optimizer with the LR ``--auto-scale-lr`` gave it, so a
checkpoint of 8 processes resumed on 4 keeps both while the loop recomputes
Eq. 1's period from the new iterations: the LR leaves Eq. 1 without an
error. The geometry (world size, per-process iterations, effective batch)
is therefore written with every checkpoint and compared on resume.
"""
from typing import Dict, Optional

from mmengine.hooks import Hook

from muscle_mm.registry import HOOKS

META_KEY = 'run_geometry'


def run_geometry(runner) -> dict:
    """World size and, per task ('' for a one-task run), the batch size,
    iterations per epoch on each process and the effective batch."""
    loop = runner.train_loop
    loaders = getattr(loop, 'dataloaders', None) or {'': loop.dataloader}
    world = runner.world_size
    geometry = dict(
        world_size=world,
        batch_size={t: dl.batch_size
                    for t, dl in loaders.items()},
        iters_per_epoch={t: len(dl)
                         for t, dl in loaders.items()},
        effective_batch={t: dl.batch_size * world
                         for t, dl in loaders.items()})
    per_round = getattr(loop, 'iters_per_round', None)
    if per_round is not None:
        geometry['iters_per_round'] = per_round
    model = getattr(runner.model, 'module', runner.model)
    if hasattr(model, 'tasks') and hasattr(loop, 'tasks'):
        # the parameters' order (hence the optimizer state's) and the order
        # the loop reshuffles: a config dumped by mmengine lists them by name
        geometry['task_order'] = dict(
            model=list(model.tasks), loop=list(loop.tasks))
    return geometry


def describe_geometry(geometry: dict) -> str:
    """``world size 8 (per process: pneumonia 37 + tbx 20 iterations an
    epoch, 57 a round; effective batch pneumonia 128, tbx 32)``."""
    iters = ' + '.join(f'{t} {n}'.strip()
                       for t, n in geometry['iters_per_epoch'].items())
    batch = ', '.join(f'{t} {n}'.strip()
                      for t, n in geometry['effective_batch'].items())
    per_round = geometry.get('iters_per_round')
    rounds = f', {per_round} a round' if per_round is not None else ''
    return (f'world size {geometry["world_size"]} (per process: {iters} '
            f'iterations an epoch{rounds}; effective batch {batch})')


@HOOKS.register_module()
class RunGeometryHook(Hook):
    """Writes :func:`run_geometry` into every checkpoint's ``meta`` and
    stops a resumed run whose geometry differs from its checkpoint's,
    naming both and what to do. A run that only loads weights
    (``load_from`` without ``resume``) may use any geometry."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._loaded: Optional[Dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[META_KEY] = run_geometry(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta')
        self._loaded = meta.get(META_KEY) if isinstance(meta, dict) else None

    def before_train(self, runner) -> None:
        if runner.iter == 0 and runner.epoch == 0:
            return  # not resumed
        source = runner.cfg.get('load_from') or 'the checkpoint'
        if self._loaded is None:
            runner.logger.warning(
                f'{source} records no run geometry (written by an older '
                'muscle_mm): resume it with the number of processes it was '
                'trained on, or its LR schedule changes without an error.')
            return
        now = run_geometry(runner)
        if now == self._loaded:
            return
        then_order = self._loaded.get('task_order')
        if then_order is not None and then_order != now.get('task_order'):
            raise ValueError(
                f'Cannot resume {source}: its tasks were ordered '
                f'{then_order["model"]} in the model and '
                f'{then_order["loop"]} in the loop, this config orders them '
                f'{now.get("task_order", {}).get("model")} and '
                f'{now.get("task_order", {}).get("loop")}. The optimizer '
                "state follows the model's order and the task order of the "
                "rounds the loop's; a config that mmengine dumped (the copy "
                'in the work dir) lists dict keys by name. Resume with the '
                'config the run started from.')
        was = self._loaded['world_size']
        how = ('python tools/train.py CONFIG --resume' if was == 1 else
               f'bash tools/dist_train.sh CONFIG {was} --resume')
        raise ValueError(
            f'Cannot resume {source}: it was trained at '
            f'{describe_geometry(self._loaded)}, this run has '
            f'{describe_geometry(now)}. Its LR schedule and scaled LR belong '
            f'to the first. Resume with the same number of processes and '
            f'batch sizes ({how}, or tools/run_muscle.py --gpus {was}), or '
            'start again in '
            'another --work-dir.')
