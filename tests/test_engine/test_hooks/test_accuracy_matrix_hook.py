# Copyright (c) muscle_mm contributors. All rights reserved.
"""AccuracyMatrixHook: the task x task-iterate scores of MUSCLE stage 2."""
import json

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from muscle_mm.engine.hooks import AccuracyMatrix

# the tiny CL configs (toy datasets, 1/8-width ResNet) of tests/data
from cl_toys import make_cfg


def _cfg(repo_root, work_dir):
    """One task, two rounds: two task-iterates, each validated."""
    return make_cfg(
        repo_root,
        work_dir,
        tasks=('cls', ),
        rounds=2,
        validate=True,
        matrix=dict(score_keys=dict(cls='accuracy/top1')))


def _read(path):
    with open(path) as f:
        return json.load(f)


def test_accuracy_matrix_by_hand(tmp_path):
    m = AccuracyMatrix(['a', 'err'], lower_is_better=['err'])
    m.add('r1:a', dict(a=50., err=9.))
    assert m.forgetting() == dict(a=None, err=None)
    m.add('r1:err', dict(a=70., err=4.))
    m.add('r2:a', dict(a=60., err=6.))
    m.add('r2:err', dict(a=None))  # a task not validated: NaN, skipped
    assert m.forgetting() == dict(a=70. - 60., err=6. - 4.)
    np.testing.assert_array_equal(m.matrix,
                                  [[50, 70, 60, np.nan], [9, 4, 6, np.nan]])
    m.dump(str(tmp_path))
    saved = _read(tmp_path / 'cl_accuracy_matrix.json')
    assert saved['matrix'][0] == [50., 70., 60., None]
    assert saved['forgetting'] == dict(a=10., err=2.)
    assert (tmp_path / 'cl_accuracy_matrix.png').stat().st_size > 0
    other = AccuracyMatrix(['a', 'err'], ['err'])
    other.load_state_dict(m.state_dict())
    assert other.forgetting() == m.forgetting()


@pytest.mark.slow
def test_written_after_every_validation_and_kept_in_checkpoints(
        repo_root, tmp_path):
    full = tmp_path / 'full'
    Runner.from_cfg(_cfg(repo_root, full)).train()
    result = _read(full / 'cl_accuracy_matrix.json')
    assert result['tasks'] == ['cls']
    assert result['columns'] == ['r1:cls', 'r2:cls']
    assert (full / 'cl_accuracy_matrix.png').stat().st_size > 0
    # every checkpoint holds the matrix as it was then
    for i in (1, 2):
        ckpt = torch.load(full / f'epoch_{i}.pth', weights_only=False)
        assert ckpt['accuracy_matrix']['columns'] == result['columns'][:i]

    # resumed after the first task-iterate: the same matrix at the end
    cut = tmp_path / 'cut'
    cfg = _cfg(repo_root, cut)
    cfg.resume, cfg.load_from = True, str(full / 'epoch_1.pth')
    Runner.from_cfg(cfg).train()
    assert _read(cut / 'cl_accuracy_matrix.json') == result


@pytest.mark.slow
def test_standalone_validation_adds_no_column(repo_root, tmp_path):
    """runner.val() outside a CL run leaves the matrix alone."""
    runner = Runner.from_cfg(_cfg(repo_root, tmp_path))
    runner.train()
    before = _read(tmp_path / 'cl_accuracy_matrix.json')
    runner.val()
    assert _read(tmp_path / 'cl_accuracy_matrix.json') == before
