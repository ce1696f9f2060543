# Copyright (c) muscle_mm contributors. All rights reserved.
"""Stage 2's task models get their own library's initialisation.

Built from the real stage-2 configs by the runner ``tools/train.py`` builds
(the config's ``runner_type``) and initialised as it does
(``model.init_weights()`` in the config's scope), every parameter of every
task model outside the shared backbone must follow the distribution that
its library's ``init_weights`` gives the same model built alone (mmdet's
fc_reg std 0.001, mmseg's conv_seg std 0.01, FPN's Xavier, zero biases),
while the shared backbone stays bit-exact with the stage-1 checkpoint.
"""
import math
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from muscle_mm.models.multitask.multitask_model import build_task_model
from muscle_mm.registry import MODELS, RUNNERS
from muscle_mm.utils import register_all_modules

register_all_modules(init_default_scope=False)
REPO = str(Path(__file__).resolve().parents[3])


def stage1_backbone(tmp_path, depth):
    torch.manual_seed(depth)
    backbone = MODELS.build(dict(type='mmpretrain.ResNet', depth=depth))
    state = {
        f'backbone.{k}':
        torch.rand_like(v) + 0.5 if v.is_floating_point() else v
        for k, v in backbone.state_dict().items()
    }
    path = str(tmp_path / f'r{depth}_mdmoco.pth')
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path, {k[len('backbone.'):]: v for k, v in state.items()}


def assert_same_distribution(task, name, got, ref):
    if ref.numel() == 1 or ref.std() == 0:  # constant init: exact values
        assert torch.equal(got, ref), f'{task}.{name}: {got.flatten()[:4]} ' \
            f'instead of the constant {ref.flatten()[0].item()}'
        return
    # the std of n draws is within ~1/sqrt(2n) of its value; 5 sigma
    tol = 5 / math.sqrt(2 * ref.numel())
    assert abs(got.std().item() / ref.std().item() - 1) < tol, \
        f'{task}.{name}: std {got.std().item():.4g}, its library gives ' \
        f'{ref.std().item():.4g}'
    spread = 5 * ref.std().item() / math.sqrt(ref.numel())
    assert abs(got.mean().item() - ref.mean().item()) < spread + 1e-6, \
        f'{task}.{name}: mean {got.mean().item():.4g}, its library ' \
        f'gives {ref.mean().item():.4g}'


@pytest.mark.parametrize('config', [
    'configs/muscle/cl_r18.py', 'configs/muscle/cl_r50.py',
    'configs/muscle/demo/cl_r18_demo.py'
])
def test_every_task_model_gets_its_librarys_init(config, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, config))
    depth = cfg.model.backbone.depth
    path, expected = stage1_backbone(tmp_path, depth)
    cfg.model.backbone.init_cfg.checkpoint = path
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'ERROR'
    runner = RUNNERS.build(cfg)
    model = runner.model
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model.init_weights()  # what the runner's init calls
        # the shared backbone: bit-exact with the stage-1 checkpoint
        own = model.backbone.state_dict()
        assert set(own) == set(expected)
        assert all(torch.equal(v, expected[k]) for k, v in own.items())
        for task, task_cfg in cfg.model.tasks.items():
            torch.manual_seed(1)
            alone = build_task_model(task_cfg)  # its library, on its own
            alone.init_weights()
            ref = dict(alone.named_parameters())
            got = dict(model.tasks[task].named_parameters())
            assert set(got) == {k for k in ref if not k.startswith(
                'backbone.')}
            for name, value in got.items():
                assert_same_distribution(task, name, value.detach(),
                                         ref[name].detach())
