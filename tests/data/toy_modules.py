"""A tiny learnable dataset, model and hook for engine-level tests.

Imported by test configs through ``custom_imports`` so that subprocesses
(torchrun workers) can build them too.
"""
import os
import os.path as osp

import torch
import torch.nn as nn
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from muscle_mm.registry import DATASETS, HOOKS, MODELS


@DATASETS.register_module()
class ToyRegressionDataset(Dataset):
    """``y = x @ w_true`` with fixed random ``x``; deterministic from seed."""

    def __init__(self, num_samples: int = 64, dim: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, dim, generator=g)
        w_true = torch.randn(dim, 1, generator=g)
        self.y = self.x @ w_true
        self.metainfo = dict()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=self.x[idx], target=self.y[idx])


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """A linear layer and a BatchNorm (to exercise buffers under DDP)."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.fc = nn.Linear(dim, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.fc(self.bn(inputs))
        if mode == 'loss':
            target = torch.stack(target) if isinstance(target,
                                                       list) else target
            return dict(loss=((out - target)**2).mean())
        return out


@HOOKS.register_module()
class DumpWeightsHook(Hook):
    """Save each rank's final parameters to ``work_dir/weights_rank{r}.pth``."""

    def after_run(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, osp.join(runner.work_dir,
                                   f'weights_rank{get_rank()}.pth'))


@HOOKS.register_module()
class InterruptHook(Hook):
    """Kill the process after epoch ``$TOY_INTERRUPT_AFTER_EPOCH`` (after its
    checkpoint is saved) to simulate an interrupted run."""

    priority = 'LOWEST'

    def after_train_epoch(self, runner) -> None:
        stop = os.environ.get('TOY_INTERRUPT_AFTER_EPOCH')
        if stop is not None and runner.epoch >= int(stop):
            os._exit(3)
