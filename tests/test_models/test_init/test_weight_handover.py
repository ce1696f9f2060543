# Copyright (c) muscle_mm contributors. All rights reserved.
"""Weights handed from one stage to the next arrive bit-exact.

Every initialiser that loads a backbone checkpoint must leave every tensor
(parameters and buffers) equal to the checkpoint after ``init_weights()``:
stage 2 (the shared mmpretrain ResNet of MultiTaskModel) and stage 3 of the
four tasks (mmpretrain, mmseg and mmdet ResNets), through the options the
study passes (``LocalPretrained``) and through mmengine's ``Pretrained``.
The models are built the way ``tools/train.py`` builds them.
"""
import argparse
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from muscle_mm.apis.study import MuscleStudy, StudySettings, default_work_dir
from muscle_mm.metainfo import TASKS
from muscle_mm.registry import MODELS, RUNNERS
from muscle_mm.utils import register_all_modules
from muscle_mm.utils.checkpoint import export_backbone

register_all_modules(init_default_scope=False)
REPO = str(Path(__file__).resolve().parents[3])
DEPTHS = (18, 50)


def cli_options(items):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *items]).cfg_options


def built_model(config, options=(), edit=None, work_dir='.'):
    """The model as ``tools/train.py CONFIG --cfg-options ...`` builds and
    initialises it."""
    cfg = Config.fromfile(config)
    if options:
        cfg.merge_from_dict(cli_options(options))
    if edit:
        edit(cfg)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'ERROR'
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        runner.model.init_weights()
    return runner.model


@pytest.fixture(scope='module', params=DEPTHS)
def stage_checkpoint(request, tmp_path_factory):
    """A stage-2 checkpoint exported as the study does, whose every tensor
    is random (residual-block BNs included, so a re-zeroed BN shows)."""
    depth = request.param
    torch.manual_seed(depth)
    backbone = MODELS.build(dict(type='mmpretrain.ResNet', depth=depth))
    state = {}
    for key, value in backbone.state_dict().items():
        if value.is_floating_point():
            value = torch.rand_like(value) + 0.5  # positive: running_var too
        else:
            value = torch.full_like(value, 7)  # num_batches_tracked
        state[f'backbone.{key}'] = value
    state['tasks.pneumonia.head.fc.weight'] = torch.randn(2, 8)
    folder = tmp_path_factory.mktemp(f'r{depth}')
    torch.save(dict(state_dict=state, meta=dict()), folder / 'epoch_40.pth')
    out = str(folder / 'backbones' / f'r{depth}_muscle.pth')
    export_backbone(str(folder / 'epoch_40.pth'), out)
    return depth, out, {k[len('backbone.'):]: v for k, v in state.items()
                        if k.startswith('backbone.')}


def assert_equal_to_checkpoint(backbone, expected):
    own = backbone.state_dict()
    assert set(own) == set(expected)
    differ = [k for k, v in own.items() if not torch.equal(v, expected[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:4]}'


def pretrained(path):

    def edit(cfg):
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', checkpoint=path, prefix='backbone.')

    return edit


@pytest.mark.parametrize('how', ['study', 'Pretrained'])
def test_stage2_starts_from_the_stage1_backbone_exactly(
        stage_checkpoint, how, tmp_path):
    depth, path, expected = stage_checkpoint
    config = osp.join(REPO, 'configs/muscle', f'cl_r{depth}.py')
    if how == 'study':
        model = built_model(config, MuscleStudy.init_options(path),
                            work_dir=tmp_path)
    else:
        model = built_model(config, edit=pretrained(path), work_dir=tmp_path)
    assert_equal_to_checkpoint(model.backbone, expected)
    for task in model.tasks.values():  # and every task model sees it
        assert task.backbone is model.backbone


@pytest.mark.parametrize('task', TASKS)
@pytest.mark.parametrize('how', ['study', 'Pretrained'])
def test_stage3_starts_from_the_stage2_backbone_exactly(
        stage_checkpoint, task, how, tmp_path):
    depth, path, expected = stage_checkpoint
    config = osp.join(REPO, 'configs/muscle/finetune',
                      f'{task}_r{depth}_muscle.py')
    if how == 'study':
        model = built_model(config, MuscleStudy.init_options(path),
                            work_dir=tmp_path)
    else:
        model = built_model(config, edit=pretrained(path), work_dir=tmp_path)
    assert_equal_to_checkpoint(model.backbone, expected)


# ------------------------------------------------ stage 2's default input
@pytest.mark.parametrize('scale,name', [('paper', 'cl_r18'),
                                        ('paper', 'cl_r50'),
                                        ('paper', 'muscle_minus_r18'),
                                        ('paper', 'muscle_minus_r50'),
                                        ('demo', 'demo/cl_r18_demo'),
                                        ('demo', 'demo/muscle_minus_r18_demo')
                                        ])
def test_stage2_configs_default_to_the_stage1_file_the_study_writes(
        scale, name):
    init_cfg = Config.fromfile(
        osp.join(REPO, 'configs/muscle', f'{name}.py')).model.backbone.init_cfg
    study = MuscleStudy(
        StudySettings(work_dir=default_work_dir(scale), scale=scale),
        log=lambda m: 0)
    depth = 50 if 'r50' in name else 18
    assert init_cfg.type == 'LocalPretrained' and init_cfg.source == 'mdmoco'
    assert init_cfg.checkpoint == osp.relpath(
        study.backbone_file(f'r{depth}', 'mdmoco'))


@pytest.mark.parametrize('task', TASKS)
@pytest.mark.parametrize('init', ['mdmoco', 'muscle_minus', 'muscle'])
def test_stage3_configs_default_to_the_files_the_study_writes(task, init):
    for scale, config in (
        ('paper', f'configs/muscle/finetune/{task}_r50_{init}.py'),
        ('demo', f'configs/muscle/finetune/demo/{task}_r18_{init}_demo.py')):
        study = MuscleStudy(
            StudySettings(work_dir=default_work_dir(scale), scale=scale),
            log=lambda m: 0)
        depth = 'r50' if scale == 'paper' else 'r18'
        checkpoint = Config.fromfile(osp.join(
            REPO, config)).model.backbone.init_cfg.checkpoint
        assert checkpoint == osp.relpath(study.backbone_file(depth, init))


def test_random_init_is_an_explicit_opt_out(tmp_path):
    model = built_model(
        osp.join(REPO, 'configs/muscle/cl_r18.py'),
        ['model.backbone.init_cfg=None'],
        work_dir=tmp_path)
    assert model.backbone.init_cfg is None


@pytest.mark.slow
def test_design_card_command_without_stage1_stops_naming_the_file(
        tmp_path, demo_data_root):
    """``python tools/train.py configs/muscle/cl_r18.py`` (paper config, the
    demo data linked as data/) stops before training, naming the missing
    stage-1 file and the commands that make it."""
    (tmp_path / 'data').symlink_to(demo_data_root, target_is_directory=True)
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/train.py'),
        osp.join(REPO, 'configs/muscle/cl_r18.py'), '--work-dir', 'work'
    ],
                          cwd=tmp_path,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'FileNotFoundError: MD-MoCo (stage 1) ResNet-18 backbone not ' \
        'found at work_dirs/muscle_paper/backbones/r18_mdmoco.pth' in err
    assert 'python tools/train.py configs/muscle/mdmoco_r18.py' in err
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in err
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()
