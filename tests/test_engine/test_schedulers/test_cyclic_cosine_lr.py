# Copyright (c) muscle_mm contributors. All rights reserved.
"""CyclicCosineLR against Eq. 1 of the MUSCLE paper, written out by hand."""
import math

import pytest
import torch
import torch.nn as nn

from muscle_mm.engine.schedulers import CyclicCosineLR
from muscle_mm.registry import PARAM_SCHEDULERS


def eq1(t, period, eta_max, eta_min=0., decay=1.):
    """Eq. 1 as printed, with eta_min^i = eta_min * decay ** (t // T)."""
    eta_min_i = eta_min * decay**(t // period)
    return eta_min_i + 0.5 * (eta_max - eta_min) * (
        1 + math.cos(t / period * 2 * math.pi))


def make_optimizer(lrs=(0.1, )):
    groups = [{
        'params': [nn.Parameter(torch.zeros(1))],
        'lr': lr
    } for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def lr_trace(optimizer, scheduler, steps):
    """LR used at each of ``steps`` iterations (one step per iteration)."""
    trace = []
    for _ in range(steps):
        trace.append([g['lr'] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return trace


def test_matches_eq1_across_periods():
    period, lrs = 8, (0.1, 0.02)
    opt = make_optimizer(lrs)
    sched = CyclicCosineLR(opt, period=period, eta_min=1e-3, by_epoch=False)
    trace = lr_trace(opt, sched, 3 * period + 3)
    for t, got in enumerate(trace):
        for lr, eta_max in zip(got, lrs):
            assert lr == pytest.approx(
                eq1(t, period, eta_max, 1e-3), abs=1e-12)
    # full 2*pi wave: max at 0 and T, min at T/2, then again at 2T, 5T/2
    assert trace[0][0] == pytest.approx(0.1)
    assert trace[period // 2][0] == pytest.approx(1e-3)
    assert trace[period][0] == pytest.approx(0.1)
    assert trace[2 * period + period // 2][0] == pytest.approx(1e-3)
    # quarter period: half way between max and min (hand value)
    assert trace[period // 4][0] == pytest.approx((0.1 + 1e-3) / 2)


def test_eta_min_ratio_and_decay():
    period = 4
    opt = make_optimizer((0.2, 0.05))
    sched = CyclicCosineLR(
        opt,
        period=period,
        eta_min_ratio=0.1,
        eta_min_decay=0.5,
        by_epoch=False)
    trace = lr_trace(opt, sched, 3 * period)
    for t, got in enumerate(trace):
        for lr, eta_max in zip(got, (0.2, 0.05)):
            assert lr == pytest.approx(
                eq1(t, period, eta_max, 0.1 * eta_max, 0.5), abs=1e-12)
    # trough of the 2nd cycle (t = 6): eta_min^1 = 0.02 * 0.5 (by hand)
    assert trace[6][0] == pytest.approx(0.01)


def test_state_dict_round_trip_continues_cycle():
    period = 6
    opt = make_optimizer((0.1, ))
    sched = CyclicCosineLR(opt, period=period, eta_min=0.01, by_epoch=False)
    lr_trace(opt, sched, 9)  # stop inside the second cycle
    state = sched.state_dict()
    assert state['last_step'] == 9

    opt2 = make_optimizer((0.1, ))
    sched2 = CyclicCosineLR(opt2, period=period, eta_min=0.01, by_epoch=False)
    sched2.load_state_dict(state)
    # like the runner on resume: the next step picks up at t = 10
    trace = lr_trace(opt2, sched2, 2 * period)
    for k, (lr, ) in enumerate(trace[1:], start=10):
        assert lr == pytest.approx(eq1(k, period, 0.1, 0.01), abs=1e-12)


def test_convert_to_iter_based_via_registry():
    opt = make_optimizer((0.1, ))
    sched = PARAM_SCHEDULERS.build(
        dict(
            type='CyclicCosineLR',
            period=2,
            begin=1,
            end=5,
            convert_to_iter_based=True),
        default_args=dict(optimizer=opt, epoch_length=3))
    assert isinstance(sched, CyclicCosineLR)
    assert (sched.period, sched.begin, sched.end, sched.by_epoch) == (6, 3, 15,
                                                                      False)
    trace = lr_trace(opt, sched, 16)
    for it, (lr, ) in enumerate(trace):
        if it < 3:
            assert lr == pytest.approx(0.1)  # before `begin`: untouched
        elif it < 15:
            assert lr == pytest.approx(eq1(it - 3, 6, 0.1), abs=1e-12)
    assert trace[15][0] == pytest.approx(trace[14][0])  # frozen after `end`


@pytest.mark.parametrize('kwargs,match', [
    (dict(period=0), 'positive int'),
    (dict(period=2.5), 'positive int'),
    (dict(period=4, eta_min=0., eta_min_ratio=0.1), 'not both'),
    (dict(period=4, eta_min_decay=0.), 'eta_min_decay'),
    (dict(period='weekly', by_epoch=False), "'round', 'task_iterate'"),
    (dict(period='task_iterate', by_epoch=True), 'by_epoch=False'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CyclicCosineLR(make_optimizer(), **kwargs)


def test_loop_period_outside_the_cl_loop_fails_clearly():
    opt = make_optimizer()
    sched = CyclicCosineLR(opt, period='round', by_epoch=False)
    assert opt.param_groups[0]['lr'] == 0.1  # t = 0 needs no period
    opt.step()
    with pytest.raises(RuntimeError, match='MultiTaskCLLoop'):
        sched.step()


@pytest.mark.slow
def test_runner_resume_continues_cycle(tmp_path):
    """The LR of a resumed run equals Eq. 1 at the global iteration."""
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.fc(inputs)
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    class RecordLR(Hook):

        def __init__(self):
            self.lrs = []

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])

    class Interrupt(Hook):
        priority = 'LOWEST'  # after CheckpointHook has saved the epoch

        def after_train_epoch(self, runner):
            if runner.epoch + 1 == 2:  # the counter moves on after the hooks
                raise KeyboardInterrupt

    data = [dict(inputs=torch.randn(2)) for _ in range(5)]

    def run(resume):
        recorder = RecordLR()
        runner = Runner(
            model=Toy(),
            work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=data,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=2),
            train_cfg=dict(by_epoch=True, max_epochs=4),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            param_scheduler=dict(
                type='CyclicCosineLR',
                period=2,
                eta_min=0.01,
                convert_to_iter_based=True),
            custom_hooks=[recorder] + ([] if resume else [Interrupt()]),
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook', interval=1)),
            resume=resume,
            default_scope='muscle_mm',
            experiment_name=f'cyclic_{resume}')
        try:
            runner.train()
        except KeyboardInterrupt:
            pass
        return recorder.lrs

    first = run(resume=False)  # 3 iters per epoch, T = 6 iters; stops at 2
    resumed = run(resume=True)  # resumes from epoch_2.pth
    assert len(first) == 6 and len(resumed) == 6
    for it, lr in enumerate(first + resumed):
        assert lr == pytest.approx(eq1(it, 6, 0.1, 0.01), abs=1e-9), it


@pytest.mark.parametrize('config', ['cl_r18.py', 'cl_r50.py'])
def test_config_minimum_follows_auto_scale_lr(config):
    """--auto-scale-lr at 8 GPUs multiplies the LR by 8: Eq. 1's minimum
    of the MUSCLE configs moves with it, so min/max stays 1/100."""
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(repo, 'configs/muscle', config))
    base_lr = cfg.optim_wrapper.optimizer.lr
    for gpus in (1, 8):
        opt = make_optimizer((base_lr * gpus, ))
        # a numeric period stands in for the loop's 'round' here
        sched = PARAM_SCHEDULERS.build(
            dict(cfg.param_scheduler, period=8, optimizer=opt))
        trace = [lr for lr, in lr_trace(opt, sched, 9)]
        assert max(trace) == pytest.approx(base_lr * gpus)
        assert min(trace) == pytest.approx(base_lr * gpus / 100)
