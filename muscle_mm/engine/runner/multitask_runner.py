# Copyright (c) muscle_mm contributors. All rights reserved.
from typing import Dict, Optional

from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner

from muscle_mm.registry import RUNNERS
from .lr_scaling import scale_ratio


@RUNNERS.register_module()
class MultiTaskRunner(Runner):
    """mmengine's ``Runner`` whose ``auto_scale_lr`` understands the task
    dataloaders of :class:`MultiTaskCLLoop`.

    mmengine reads one ``train_dataloader.batch_size``; in MUSCLE stage 2
    every task has its own batch size and all share one optimizer, so
    ``base_batch_size`` is a dict task -> batch the LR was set for, and the
    LR is scaled by ``world_size x batch / base``, which must be the same
    for every task.
    """

    def scale_lr(self,
                 optim_wrapper: OptimWrapper,
                 auto_scale_lr: Optional[Dict] = None) -> None:
        loaders = getattr(self.train_loop, 'dataloaders', None)
        if not loaders or not (auto_scale_lr
                               and auto_scale_lr.get('enable', False)):
            return super().scale_lr(optim_wrapper, auto_scale_lr)
        ratio = scale_ratio({t: dl.batch_size
                             for t, dl in loaders.items()},
                            auto_scale_lr['base_batch_size'],
                            self.world_size, 'MultiTaskRunner')
        wrappers = list(optim_wrapper.values()) if isinstance(
            optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group['lr'] = group['lr'] * ratio
        self.logger.info(
            f'LR scaled by {ratio:g} (world size {self.world_size}, task '
            f'batch sizes {({t: dl.batch_size for t, dl in loaders.items()})}'
            f', base {dict(auto_scale_lr["base_batch_size"])}); the first '
            f'param group now has lr={wrappers[0].optimizer.param_groups[0]["lr"]:g}.')
