# Copyright (c) muscle_mm contributors. All rights reserved.
"""The learning rate follows the number of GPUs (linear scaling rule)."""
import glob
import os.path as osp
from pathlib import Path

import pytest
from mmengine.config import Config

from muscle_mm.apis.study import MuscleStudy, StudySettings
from muscle_mm.engine.runner.lr_scaling import lr_scaling, scale_ratio

REPO = str(Path(__file__).resolve().parents[3])
LEAVES = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs/muscle/**/*.py'), recursive=True)
    if '/_base_/' not in p)


@pytest.mark.parametrize('config', LEAVES,
                         ids=[osp.relpath(p, REPO) for p in LEAVES])
def test_every_config_declares_the_batch_its_lr_is_for(config):
    cfg = Config.fromfile(config)
    assert 'base_batch_size' in cfg.auto_scale_lr
    assert not cfg.auto_scale_lr.get('enable', False)  # --auto-scale-lr
    lr, ratio = lr_scaling(cfg, 1)
    assert lr > 0 and lr_scaling(cfg, 8)[1] == pytest.approx(8 * ratio)
    if '/demo/' in config:
        assert ratio == 1  # the demo runs on one process at its own LR


def test_multi_task_ratio_must_agree():
    assert scale_ratio(dict(a=16, b=4), dict(a=16, b=4), 8, 'x') == 8
    with pytest.raises(ValueError, match='different factors'):
        scale_ratio(dict(a=16, b=8), dict(a=16, b=4), 8, 'x')
    with pytest.raises(KeyError, match=r"no entry for task\(s\) \['b'\]"):
        scale_ratio(dict(a=16, b=8), dict(a=16), 8, 'x')


@pytest.mark.parametrize('config,gpus,flag,logged', [
    ('configs/muscle/finetune/pneumonia_r18_scratch.py', 8, True,
     'LR 0.00625 x 8 = 0.05 on 8 process(es)'),
    ('configs/muscle/finetune/pneumonia_r18_scratch.py', 1, False,
     'LR 0.00625 on 1 process(es)'),
    ('configs/muscle/mdmoco_r50.py', 8, False, 'LR 0.03 on 8 process(es)'),
    ('configs/muscle/mdmoco_r50.py', 2, True,
     'LR 0.03 x 0.25 = 0.0075 on 2 process(es)'),
    ('configs/muscle/cl_r18.py', 4, True, 'LR 0.01 x 4 = 0.04'),
])
def test_study_scales_and_logs_the_lr(config, gpus, flag, logged, tmp_path):
    logs = []
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path), scale='paper', gpus=gpus),
        log=logs.append)
    cmd = study.train_command(osp.join(REPO, config), str(tmp_path))
    assert ('--auto-scale-lr' in cmd) is flag
    assert any(logged in line for line in logs), logs
    launcher = 'dist_train.sh' if gpus > 1 else 'train.py'
    assert osp.basename(cmd[1]) == launcher


def test_study_passes_amp_to_every_run(tmp_path):
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path), scale='paper', amp=True),
        log=lambda m: 0)
    cmd = study.train_command(
        osp.join(REPO, 'configs/muscle/cl_r18.py'), str(tmp_path))
    assert '--amp' in cmd
