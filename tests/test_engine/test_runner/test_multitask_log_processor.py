# Copyright (c) muscle_mm contributors. All rights reserved.
"""MultiTaskLogProcessor: the log lines of a CL run."""
import glob
import json
import os.path as osp

import pytest
from mmengine.runner import Runner

# the tiny CL configs (toy datasets, 1/8-width ResNet) of tests/data
from cl_toys import make_cfg


@pytest.mark.slow
def test_lines_carry_the_active_task_smoothed_since_it_took_over(
        repo_root, tmp_path):
    # fixed order cls, seg, cls, seg; two iterations per task-iterate
    cfg = make_cfg(
        repo_root, tmp_path, tasks=('cls', 'seg'), rounds=2, reshuffle=False)
    for loader in cfg.train_dataloader.values():
        loader.dataset.n = 4
    cfg.visualizer = dict(
        type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    runner = Runner.from_cfg(cfg)
    runner.train()

    (path, ) = glob.glob(osp.join(tmp_path, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    lines = [line for line in lines if 'cls.loss' in line or any(
        k.startswith('seg.') for k in line)]
    assert [line['step'] for line in lines] == list(range(1, 9))
    for line, task in zip(lines, ['cls'] * 2 + ['seg'] * 2 + ['cls'] * 2 +
                          ['seg'] * 2):
        assert {k.split('.')[0] for k in line if '.' in k} == {task}

    # the loss of cls at its second task-iterate is smoothed over that
    # task-iterate only, not over the first one's values
    raw = runner.message_hub.get_scalar('train/cls.loss').data[0]
    assert len(raw) == 4
    got = [line['cls.loss'] for line in lines if 'cls.loss' in line]
    expected = [raw[0], raw[:2].mean(), raw[2], raw[2:4].mean()]
    assert got == pytest.approx(expected, rel=1e-6)
