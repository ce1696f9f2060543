# Copyright (c) muscle_mm contributors. All rights reserved.
"""Every fine-tune follows the same LR shape on 1 and on 8 GPUs.

The LR of each run is traced with mmengine's own scheduler classes, built
the way its runner builds them (``convert_to_iter_based`` included), at the
iterations per epoch of the paper's training split on 1 and 8 processes;
traced as a fraction of the peak, at the same fractions of the run, the
two must agree. The preflight's check of warm-ups and milestones is tested
on the same configs and on broken ones.
"""
import glob
import math
import os.path as osp
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from muscle_mm.engine.schedulers.run_fit import schedule_problems
from muscle_mm.metainfo import TABLE1, TASK_DATASETS
from muscle_mm.utils import register_all_modules

register_all_modules(init_default_scope=False)
REPO = str(Path(__file__).resolve().parents[2])
CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/muscle/finetune/*.py')) +
    glob.glob(osp.join(REPO, 'configs/muscle/finetune/demo/*.py')))


def iters_per_epoch(cfg, task, gpus):
    n = TABLE1[TASK_DATASETS[task]]['counts']['train']
    return math.ceil(math.ceil(n / gpus) / cfg.train_dataloader.batch_size)


def lr_trace(cfg, epoch_length, lr):
    """LR of every iteration, schedulers stepped as mmengine's
    ParamSchedulerHook steps them (iter-based each iteration, epoch-based
    at the end of each epoch)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheds = []
    for sched in cfg.param_scheduler:
        sched = dict(sched)
        kind = PARAM_SCHEDULERS.get(sched.pop('type'))
        if sched.pop('convert_to_iter_based', False):
            scheds.append(
                kind.build_iter_from_epoch(
                    opt, **sched, epoch_length=epoch_length))
        else:
            scheds.append(kind(opt, **sched))
    trace = []
    for epoch in range(cfg.train_cfg.max_epochs):
        for _ in range(epoch_length):
            trace.append(opt.param_groups[0]['lr'])
            opt.step()
            for s in scheds:
                if not s.by_epoch:
                    s.step()
        for s in scheds:
            if s.by_epoch:
                s.step()
    return trace


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_one_and_eight_gpus_follow_the_same_lr_shape(config):
    cfg = Config.fromfile(config)
    task = osp.basename(config).split('_')[0]
    lr = cfg.optim_wrapper.optimizer.lr
    traces = {}
    for gpus in (1, 8):
        length = iters_per_epoch(cfg, task, gpus)
        # --auto-scale-lr: the peak grows with the GPUs, the shape must not
        traces[gpus] = (length, [
            v / (lr * gpus) for v in lr_trace(cfg, length, lr * gpus)
        ])
    (l1, one), (l8, eight) = traces[1], traces[8]
    for quarter in range(4 * cfg.train_cfg.max_epochs):
        # the same fraction of the run: quarter/4 epochs into it
        a, b = one[quarter * l1 // 4], eight[quarter * l8 // 4]
        assert a == pytest.approx(b, rel=0.05, abs=1e-6), (
            f'{quarter / 4:g} epochs into the run: {a:.4g} of the peak LR '
            f'on 1 GPU, {b:.4g} on 8')


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_preflight_finds_the_schedule_fits_on_one_and_eight_gpus(config):
    cfg = Config.fromfile(config)
    task = osp.basename(config).split('_')[0]
    for gpus in (1, 8):
        assert schedule_problems(cfg.param_scheduler,
                                 iters_per_epoch(cfg, task, gpus),
                                 cfg.train_cfg.max_epochs, gpus) == []


def test_preflight_names_what_does_not_fit():
    # mmdet's 500-iteration warm-up on TBX at 8 GPUs: 20 iterations an epoch
    sched = [
        dict(type='LinearLR', by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', by_epoch=True, begin=0, end=12,
             milestones=[8, 11])
    ]
    problems = schedule_problems(sched, 20, 12, 8)
    assert len(problems) == 4, problems
    assert 'LinearLR ends at iteration 500, after the run ends (the run ' \
        'has 12 epochs x 20 iterations = 240 per process at world size 8)' \
        in problems[0]
    assert 'warm-up (LinearLR) ends at iteration 500, 208% into the run' \
        in problems[1]
    assert 'MultiStepLR milestone 8 (iteration 160) falls inside the ' \
        'warm-up, which ends at iteration 500' in problems[2]
    assert 'milestone 11 (iteration 220) falls inside' in problems[3]
    # at one GPU (160 iterations an epoch) the same schedule fits
    assert schedule_problems(sched, 160, 12, 1) == []
    # a milestone past a run shortened to 5 epochs
    short = schedule_problems(
        [dict(type='MultiStepLR', by_epoch=True, milestones=[8])], 10, 5, 1)
    assert short == ['MultiStepLR milestone 8 (iteration 80) is not inside '
                     'the run (the run has 5 epochs x 10 iterations = 50 per '
                     'process at world size 1)']
