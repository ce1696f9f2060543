# Copyright (c) muscle_mm contributors. All rights reserved.
"""Eq. 1's period taken from the CL loop at run time (not counted by hand).

Runs the real runner + MultiTaskCLLoop + CyclicCosineLR on the tiny tasks of
tests/data/cl_toys.py and checks the learning rate of every iteration against
Eq. 1 written out by hand.
"""
import math

import pytest
from mmengine.hooks import Hook
from mmengine.runner import Runner

from cl_toys import InterruptAfterIterate, make_cfg

ETA_MAX, ETA_MIN = 0.01, 0.001


def eq1(t, period):
    return ETA_MIN + 0.5 * (ETA_MAX - ETA_MIN) * (
        1 + math.cos(t / period * 2 * math.pi))


class RecordLR(Hook):
    """(active task, learning rate) of every training iteration."""

    def __init__(self):
        self.trace = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.trace.append((runner.train_loop.active_task,
                           runner.optim_wrapper.get_lr()['lr'][0]))


def run(repo_root, work_dir, period, interrupt=None, resume=False, rounds=2):
    # cls: 6 images -> 3 iterations, seg: 4 images -> 2; one round = 5
    cfg = make_cfg(repo_root, work_dir, rounds=rounds)
    cfg.train_dataloader.cls.dataset.n = 6
    cfg.train_dataloader.seg.dataset.n = 4
    cfg.optim_wrapper.optimizer.lr = ETA_MAX
    cfg.param_scheduler = dict(
        type='CyclicCosineLR', by_epoch=False, period=period, eta_min=ETA_MIN)
    cfg.resume = resume
    recorder = RecordLR()
    hooks = [recorder]
    if interrupt:
        hooks.append(InterruptAfterIterate(interrupt))
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks(hooks)
    try:
        runner.train()
    except KeyboardInterrupt:
        pass
    return runner, recorder.trace


def test_round_period_is_one_round_of_this_run(repo_root, tmp_path):
    runner, trace = run(repo_root, tmp_path, 'round')
    assert runner.train_loop.iters_per_round == 5
    lrs = [lr for _, lr in trace]
    assert len(lrs) == 10
    assert lrs == pytest.approx([eq1(it % 5, 5) for it in range(10)])
    # a new wave starts exactly with each round
    assert lrs[0] == lrs[5] == pytest.approx(ETA_MAX)


def test_task_iterate_period_restarts_every_task(repo_root, tmp_path):
    _, trace = run(repo_root, tmp_path, 'task_iterate')
    lengths = dict(cls=3, seg=2)
    expected, starts, it = [], [], 0
    while it < len(trace):  # group the trace into task-iterates
        task = trace[it][0]
        expected += [eq1(t, lengths[task]) for t in range(lengths[task])]
        starts.append(it)
        it += lengths[task]
    assert len(starts) == 4  # 2 rounds x 2 tasks
    assert [lr for _, lr in trace] == pytest.approx(expected)
    assert all(trace[i][1] == pytest.approx(ETA_MAX) for i in starts)


def test_numeric_period_that_disagrees_stops_before_training(
        repo_root, tmp_path):
    with pytest.raises(ValueError) as info:
        run(repo_root, tmp_path, 4)
    message = str(info.value)
    assert 'period=4 iterations' in message
    assert 'one round of this run is 5 iterations per process' in message
    assert 'cls 3 + seg 2 at world size 1' in message
    assert "period='round'" in message
    assert not list(tmp_path.glob('epoch_*.pth'))  # not one iteration ran


def test_numeric_period_of_whole_rounds_is_accepted(repo_root, tmp_path):
    _, trace = run(repo_root, tmp_path, 10)
    assert [lr for _, lr in trace] == pytest.approx(
        [eq1(it, 10) for it in range(10)])


@pytest.mark.parametrize('period', ['round', 'task_iterate'])
def test_resume_mid_round_continues_the_schedule(repo_root, tmp_path, period):
    _, whole = run(repo_root, tmp_path / 'whole', period)
    _, first = run(repo_root, tmp_path / 'cut', period, interrupt=3)
    _, rest = run(repo_root, tmp_path / 'cut', period, resume=True)
    assert len(first) + len(rest) == len(whole)
    assert first + rest == pytest.approx(whole)
