# Copyright (c) muscle_mm contributors. All rights reserved.
"""The config tree reads like OpenMMLab's: aliases equal their full names,
schedules hold schedules only, each paper constant is written once."""
import glob
import os.path as osp
import re
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = str(Path(__file__).resolve().parents[2])
ALIASES = {
    'mdmoco_r18.py': 'mdmoco_r18_8xb32-coslr-200e_xray9.py',
    'mdmoco_r50.py': 'mdmoco_r50_8xb32-coslr-200e_xray9.py',
    'cl_r18.py': 'muscle_r18_1xb16-cyclic-10r_xray4.py',
    'cl_r50.py': 'muscle_r50_1xb16-cyclic-10r_xray4.py',
    'muscle_minus_r18.py': 'muscle-minus_r18_1xb16-const-10r_xray4.py',
    'muscle_minus_r50.py': 'muscle-minus_r50_1xb16-const-10r_xray4.py',
}
GRAMMAR = re.compile(r'[a-z0-9-]+_r(18|50)_\d+xb\d+-[a-z0-9-]+_[a-z0-9]+\.py')


def load(rel):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'muscle', rel)).to_dict()
    cfg.pop('filename', None)
    return cfg


@pytest.mark.parametrize('alias', sorted(ALIASES))
def test_alias_is_its_full_name(alias):
    assert GRAMMAR.fullmatch(ALIASES[alias])
    assert load(alias) == load(ALIASES[alias])


SCHEDULE_KEYS = {
    'optim_wrapper', 'param_scheduler', 'train_cfg', 'val_cfg', 'test_cfg',
    'auto_scale_lr',
    # Eq. 2's L2-SP term sits beside the optimizer whose weight decay is its
    # ridge term (see the file)
    'custom_hooks', 'l2sp_a'
}


@pytest.mark.parametrize(
    'path', sorted(glob.glob(osp.join(REPO, 'configs/_base_/schedules/*.py'))))
def test_schedules_hold_schedules_only(path):
    keys = set(Config.fromfile(path).keys())
    assert keys <= SCHEDULE_KEYS, f'{path}: {sorted(keys - SCHEDULE_KEYS)}'


def test_stage2_tasks_are_named_in_the_dataset_config():
    cfg = Config.fromfile(osp.join(REPO, 'configs/muscle/cl_r18.py'))
    assert 'tasks' not in cfg.train_cfg  # the loop takes the dataloaders'
    assert list(cfg.train_dataloader) == ['pneumonia', 'mura', 'lung', 'tbx']
    assert cfg.val_dataloader == cfg.train_dataloader == cfg.val_evaluator
    assert list(cfg.model.tasks) == list(cfg.train_dataloader)


def test_paper_constants_are_written_once():
    text = {
        p: open(p).read()
        for p in glob.glob(osp.join(REPO, 'configs/**/*.py'), recursive=True)
    }
    kaiming = [p for p, t in text.items() if "type='Kaiming'" in t]
    assert [osp.relpath(p, REPO) for p in kaiming] == [
        'configs/_base_/xray_constants.py'
    ]
    for number in ('122.786', '18.390', '(800, 500)'):
        where = [p for p, t in text.items() if number in t]
        assert [osp.relpath(p, REPO) for p in where] == [
            'configs/_base_/xray_constants.py'
        ], number
    why = [p for p, t in text.items() if 'not inherited,' in t]
    assert len(why) <= 1, why
