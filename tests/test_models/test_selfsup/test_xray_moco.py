# Copyright (c) muscle_mm contributors. All rights reserved.
"""XrayMoCo (MUSCLE Sec. 2.1 MD-MoCo): checks, EMA convention, views,
configs, and a few training steps."""
import copy
import os.path as osp
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import muscle_mm.models.selfsup.xray_moco as xray_moco_module
from muscle_mm.models.selfsup import XrayMoCo, check_queue_len
from muscle_mm.registry import MODELS, TRANSFORMS
from muscle_mm.utils import register_all_modules

register_all_modules(init_default_scope=False)

CONFIGS = ['mdmoco_r18.py', 'mdmoco_r50.py', 'demo/mdmoco_r18_demo.py']
# MoCo v2's view transforms that MUSCLE Sec. 2.1 switches off
FORBIDDEN = ('Crop', 'Blur', 'ColorJitter', 'Grayscale', 'Brightness',
             'Contrast', 'Saturation', 'Hue', 'Solarize', 'Posterize',
             'Equalize', 'Sharpness', 'AutoContrast', 'Invert')


def cfg_path(repo_root: str, name: str) -> str:
    return osp.join(repo_root, 'configs', 'muscle', name)


def tiny_cfg(queue_len: int = 16, momentum: float = 0.001) -> dict:
    return dict(
        type='XrayMoCo',
        queue_len=queue_len,
        feat_dim=8,
        momentum=momentum,
        data_preprocessor=dict(
            mean=[122.786] * 3, std=[18.390] * 3, to_rgb=False),
        backbone=dict(type='mmpretrain.ResNet', depth=18),
        neck=dict(
            type='mmpretrain.MoCoV2Neck',
            in_channels=512,
            hid_channels=16,
            out_channels=8,
            with_avg_pool=True),
        head=dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'),
            temperature=0.2))


def batch(n: int, h: int = 32, w: int = 48, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        inputs=[
            torch.randint(
                0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
            for _ in range(2)
        ],
        data_samples=[DataSample() for _ in range(n)])


# ----------------------------------------------------------------- checks
def test_queue_check_message_gives_numbers_and_valid_choice():
    check_queue_len(65536, 32, 8)  # the paper-scale config: 256 | 65536
    with pytest.raises(ValueError) as err:
        check_queue_len(1000, 32, 4)
    msg = str(err.value)
    assert 'queue_len=1000' in msg and 'global batch 128' in msg
    assert '32 per process x 4 processes' in msg
    valid = int(msg.split('Use e.g. queue_len=')[1].split(',')[0])
    assert valid % 128 == 0 and valid == 1024
    assert 'drop_last=True' in msg


def test_queue_checked_at_first_forward_before_compute():
    model = MODELS.build(tiny_cfg(queue_len=16))
    with mock.patch.object(model.backbone, 'forward') as backbone:
        with pytest.raises(
                ValueError,
                match=r'queue_len=16 .*global batch '
                r'6 \(= 6 per process x 1'):
            model.train_step(
                batch(6),
                OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
        backbone.assert_not_called()


def test_queue_check_uses_world_size(monkeypatch):
    """4 processes x 4 images = 16 per step: a queue of 24 cannot work."""
    model = MODELS.build(tiny_cfg(queue_len=24))
    monkeypatch.setattr(xray_moco_module, 'get_world_size', lambda: 4)
    with pytest.raises(ValueError, match='global batch 16 .*queue_len=32'):
        model.loss(model.data_preprocessor(batch(4))['inputs'], None)


def test_momentum_in_moco_paper_convention_is_refused():
    with pytest.raises(ValueError, match='momentum=0.999.*0.001'):
        MODELS.build(tiny_cfg(momentum=0.999))


def test_single_view_input_is_refused():
    model = MODELS.build(tiny_cfg())
    with pytest.raises(TypeError, match='two view batches.*length 1'):
        model.loss([torch.zeros(4, 3, 32, 32)], None)


def test_ema_follows_mmengine_convention():
    """key <- (1 - momentum) * key + momentum * query (momentum=0.25)."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(queue_len=16, momentum=0.25))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    model.train_step(batch(4, seed=1), optim)  # first step copies q into k
    key_before = model.encoder_k.module[0].conv1.weight.clone()
    query = model.backbone.conv1.weight.clone()  # updated by the SGD step
    assert not torch.equal(key_before, query)
    model.train_step(batch(4, seed=2), optim)
    torch.testing.assert_close(model.encoder_k.module[0].conv1.weight,
                               0.75 * key_before + 0.25 * query)


def test_is_mmpretrain_moco_with_its_queue():
    from mmpretrain.models import MoCo
    model = MODELS.build(tiny_cfg(queue_len=16))
    assert isinstance(model, MoCo) and isinstance(model, XrayMoCo)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step(batch(4), optim)
    assert int(model.queue_ptr) == 4  # one batch of keys went in
    norms = model.queue[:, :4].norm(dim=0)
    torch.testing.assert_close(norms, torch.ones(4))


# ------------------------------------------------------------------ views
def view_transforms(cfg: Config) -> list:
    pipeline = cfg.train_dataloader.dataset.pipeline
    multiview = [t for t in pipeline if t['type'].endswith('MultiView')]
    assert len(multiview) == 1 and multiview[0]['num_views'] == 2
    return [t for views in multiview[0]['transforms'] for t in views]


@pytest.mark.parametrize('name', CONFIGS)
def test_views_have_no_crop_blur_or_jitter(repo_root, name):
    cfg = Config.fromfile(cfg_path(repo_root, name))
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    types += [t['type'] for t in view_transforms(cfg)]
    for type_ in types:
        assert not any(bad in type_ for bad in FORBIDDEN), type_
    assert {t['type']
            for t in view_transforms(cfg)
            } == {'RandomFlip', 'mmpretrain.Rotate'}


def test_views_without_rotation_are_the_image_or_its_mirror(repo_root):
    """With the rotation set to 0 degrees, every view equals the resized
    image or its left-right mirror: nothing else (crop, blur, jitter)
    touches the pixels."""
    cfg = Config.fromfile(cfg_path(repo_root, 'demo/mdmoco_r18_demo.py'))
    views = copy.deepcopy(view_transforms(cfg))
    for t in views:
        if t['type'] == 'mmpretrain.Rotate':
            t['magnitude_range'] = (0, 0)
    multiview = TRANSFORMS.build(
        dict(type='mmpretrain.MultiView', num_views=2, transforms=[views]))
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (80, 128, 3), dtype=np.uint8)
    seen_flip = seen_same = False
    for _ in range(20):
        out = multiview(dict(img=img.copy()))['img']
        assert len(out) == 2
        for view in out:
            assert view.shape == img.shape and view.dtype == np.uint8
            same = np.array_equal(view, img)
            flip = np.array_equal(view, img[:, ::-1])
            assert same or flip
            seen_same |= same
            seen_flip |= flip
    assert seen_same and seen_flip


def test_rotation_is_at_most_10_degrees_both_ways(repo_root):
    cfg = Config.fromfile(cfg_path(repo_root, 'mdmoco_r18.py'))
    rot = [t for t in view_transforms(cfg) if 'Rotate' in t['type']][0]
    transform = TRANSFORMS.build(rot)
    np.random.seed(0)
    angles = []
    with mock.patch('mmcv.imrotate', side_effect=lambda img, a, **k: img) \
            as imrotate:
        for _ in range(200):
            transform(dict(img=np.zeros((8, 8, 3), np.uint8)))
        angles = [call.args[1] for call in imrotate.call_args_list]
    assert len(angles) == 200  # prob=1: every view is rotated
    assert max(np.abs(angles)) <= 10 and max(np.abs(angles)) > 9
    assert min(angles) < -5 and max(angles) > 5


# ---------------------------------------------------------------- configs
@pytest.mark.parametrize('name,depth,width', [('mdmoco_r18.py', 18, 512),
                                              ('mdmoco_r50.py', 50, 2048)])
def test_paper_configs(repo_root, name, depth, width):
    cfg = Config.fromfile(cfg_path(repo_root, name))
    consts = Config.fromfile(
        osp.join(repo_root, 'configs', '_base_', 'xray_constants.py'))
    model = cfg.model
    assert model.type == 'XrayMoCo'
    assert model.backbone.type == 'mmpretrain.ResNet'  # not ResNetV1c
    assert model.backbone.depth == depth
    assert model.neck.in_channels == width
    assert model.backbone.init_cfg == consts.kaiming_init  # one definition
    pre = model.data_preprocessor
    assert pre.mean == consts.xray_mean and pre.std == consts.xray_std
    assert pre.to_rgb is False
    resize = cfg.train_dataloader.dataset.pipeline[1]
    assert resize.scale == consts.xray_scale and not resize.keep_ratio
    # 8 GPUs x 32 images divide the queue (checked again at run time)
    check_queue_len(model.queue_len, cfg.train_dataloader.batch_size, 8)
    assert cfg.train_dataloader.drop_last
    assert model.momentum == 0.001 and model.head.temperature == 0.2


def test_kaiming_init_is_applied(repo_root):
    cfg = Config.fromfile(cfg_path(repo_root, 'demo/mdmoco_r18_demo.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    conv = model.backbone.layer4[0].conv1.weight  # 256 -> 512, 3x3
    fan_out = conv.shape[0] * conv.shape[2] * conv.shape[3]
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / fan_out)
    assert abs(conv.std().item() / np.sqrt(2 / fan_out) - 1) < 0.05
    assert torch.all(model.backbone.bn1.weight == 1)


# ------------------------------------------------------------- training
@pytest.mark.slow
def test_train_steps_give_finite_falling_loss(repo_root):
    """The demo model learns to tell 32 images apart from their mirrors.

    The queue is first filled with real keys (no-grad steps): MoCo's loss
    starts low against the random initial queue and rises as real keys
    come in, so only later epochs are comparable.
    """
    cfg = Config.fromfile(cfg_path(repo_root, 'demo/mdmoco_r18_demo.py'))
    cfg.model.queue_len = 16
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9))
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(
        0, 256, (32, 3, 32, 48), dtype=torch.uint8, generator=g)
    batches = [
        dict(
            inputs=[x, x.flip(-1)],
            data_samples=[DataSample() for _ in range(8)])
        for x in imgs.split(8)
    ]
    with torch.no_grad():
        for data in batches[:2]:
            model.loss(model.data_preprocessor(data, True)['inputs'], None)
    epochs = [[
        model.train_step(data, optim)['loss'].item() for data in batches
    ] for _ in range(3)]
    assert np.all(np.isfinite(epochs))
    assert np.mean(epochs[-1]) < 0.8 * np.mean(epochs[0])


@pytest.mark.slow
def test_demo_config_trains_on_demo_data(repo_root, tmp_path):
    """The demo config end to end: demo data -> MultiSourceXrayDataset ->
    two views -> XrayMoCo -> checkpoint -> exported backbone."""
    from mmengine.runner import Runner

    from muscle_mm.testing import generate_demo_data
    from muscle_mm.utils.checkpoint import export_backbone

    data = tmp_path / 'demo'
    generate_demo_data(str(data), scale=0.5)
    subprocess.run([
        sys.executable,
        osp.join(repo_root, 'tools', 'dataset_converters', 'make_splits.py'),
        '--data-root',
        str(data)
    ],
                   check=True,
                   capture_output=True)
    cfg = Config.fromfile(cfg_path(repo_root, 'demo/mdmoco_r18_demo.py'))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.dataset.data_root = str(data)
    cfg.train_dataloader.dataset.indices = 16  # 2 steps of 8
    cfg.train_dataloader.batch_size = 8
    cfg.model.queue_len = 16
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler[0].update(T_max=1, end=1)
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss) and loss > 0
    assert int(runner.model.queue_ptr) == 0  # 2 x 8 keys wrapped around
    ckpt = osp.join(cfg.work_dir, 'epoch_1.pth')
    out = export_backbone(ckpt, str(tmp_path / 'backbone.pth'))
    torch.testing.assert_close(out['backbone.conv1.weight'],
                               runner.model.backbone.conv1.weight.detach())
