# Copyright (c) muscle_mm contributors. All rights reserved.
"""Stage-1 checkpoint -> backbone checkpoint -> mmpretrain, mmseg, mmdet and
torchvision models, compared tensor by tensor."""
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import ConfigDict

from muscle_mm.registry import MODELS
from muscle_mm.utils import register_all_modules
from muscle_mm.utils.checkpoint import (KEY_ENCODER_PREFIX, export_backbone,
                                        save_checkpoint_atomic, to_torchvision)

# as tools/train.py's Runner does: configs run with default_scope='muscle_mm',
# so models of other libraries name their scope with `_scope_`
register_all_modules(init_default_scope=True)

MEAN, STD = [122.786] * 3, [18.390] * 3


def tiny_moco(depth: int = 18) -> torch.nn.Module:
    width = 512 if depth < 50 else 2048
    return MODELS.build(
        dict(
            type='XrayMoCo',
            queue_len=16,
            feat_dim=8,
            backbone=dict(type='mmpretrain.ResNet', depth=depth),
            neck=dict(
                type='mmpretrain.MoCoV2Neck',
                in_channels=width,
                hid_channels=16,
                out_channels=8,
                with_avg_pool=True),
            head=dict(
                type='mmpretrain.ContrastiveHead',
                loss=dict(type='mmpretrain.CrossEntropyLoss'),
                temperature=0.2)))


@pytest.fixture(scope='module')
def stage1(tmp_path_factory):
    """A trained-for-two-steps XrayMoCo saved like mmengine's runner does,
    so query and momentum encoders differ."""
    torch.manual_seed(0)
    model = tiny_moco()
    model.init_weights()
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        views = [
            torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
            for _ in range(2)
        ]
        data = model.data_preprocessor(
            dict(inputs=views, data_samples=None), training=True)
        loss = model.loss(data['inputs'], None)['loss']
        optim.zero_grad()
        loss.backward()
        optim.step()
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save(
        dict(meta=dict(epoch=1, iter=2), state_dict=model.state_dict()), path)
    return path, model.state_dict()


@pytest.fixture(scope='module')
def exported(stage1, tmp_path_factory):
    src, _ = stage1
    dst = str(tmp_path_factory.mktemp('export') / 'r18_backbone.pth')
    export_backbone(src, dst)
    return dst


def assert_backbone_equal(backbone: torch.nn.Module,
                          source: dict,
                          prefix: str = 'backbone.') -> None:
    target = backbone.state_dict()
    expected = {
        k[len(prefix):]: v
        for k, v in source.items() if k.startswith(prefix)
    }
    assert set(target) == set(expected)
    for key, value in expected.items():
        assert torch.equal(target[key], value), key


def pretrained(ckpt: str) -> dict:
    return dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')


def test_export_keeps_only_backbone(stage1, exported):
    ckpt = torch.load(exported, weights_only=True)
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert ckpt['meta']['source_meta']['epoch'] == 1
    _, source = stage1
    n_backbone = sum(k.startswith('backbone.') for k in source)
    assert len(ckpt['state_dict']) == n_backbone
    # no temporary file is left next to the output
    assert os.listdir(osp.dirname(exported)) == ['r18_backbone.pth']


def test_load_into_mmpretrain_classifier(stage1, exported):
    model = MODELS.build(
        dict(
            type='mmpretrain.ImageClassifier',
            _scope_='mmpretrain',
            backbone=dict(
                type='ResNet', depth=18, init_cfg=pretrained(exported)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=512)))
    model.init_weights()
    assert_backbone_equal(model.backbone, stage1[1])


def test_load_into_mmseg_encoder_decoder(stage1, exported):
    model = MODELS.build(
        dict(
            type='mmseg.EncoderDecoder',
            _scope_='mmseg',
            data_preprocessor=dict(
                type='mmseg.SegDataPreProcessor', mean=MEAN, std=STD),
            backbone=dict(
                type='ResNet', depth=18, init_cfg=pretrained(exported)),
            decode_head=dict(
                type='ASPPHead',
                in_channels=512,
                in_index=3,
                channels=16,
                dilations=(1, 12, 24, 36),
                num_classes=3,
                loss_decode=dict(type='CrossEntropyLoss'))))
    model.init_weights()
    assert_backbone_equal(model.backbone, stage1[1])


def test_load_into_mmdet_faster_rcnn(stage1, exported):
    # mmdet reads train_cfg/test_cfg by attribute: a ConfigDict as from
    # a config file
    model = MODELS.build(
        ConfigDict(
            type='mmdet.FasterRCNN',
            _scope_='mmdet',
            data_preprocessor=dict(
                type='mmdet.DetDataPreprocessor', mean=MEAN, std=STD),
            backbone=dict(
                type='ResNet',
                depth=18,
                frozen_stages=-1,
                init_cfg=pretrained(exported)),
            neck=dict(
                type='FPN',
                in_channels=[64, 128, 256, 512],
                out_channels=16,
                num_outs=5),
            rpn_head=dict(
                type='RPNHead',
                in_channels=16,
                feat_channels=16,
                anchor_generator=dict(
                    type='AnchorGenerator',
                    scales=[8],
                    ratios=[0.5, 1.0, 2.0],
                    strides=[4, 8, 16, 32, 64]),
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[.0, .0, .0, .0],
                    target_stds=[1.0, 1.0, 1.0, 1.0])),
            roi_head=dict(
                type='StandardRoIHead',
                bbox_roi_extractor=dict(
                    type='SingleRoIExtractor',
                    roi_layer=dict(
                        type='RoIAlign', output_size=7, sampling_ratio=0),
                    out_channels=16,
                    featmap_strides=[4, 8, 16, 32]),
                bbox_head=dict(
                    type='Shared2FCBBoxHead',
                    in_channels=16,
                    fc_out_channels=32,
                    roi_feat_size=7,
                    num_classes=3)),
            train_cfg=None,
            test_cfg=dict(
                rpn=dict(
                    nms_pre=100,
                    max_per_img=100,
                    nms=dict(type='nms', iou_threshold=0.7)),
                rcnn=dict(
                    score_thr=0.05,
                    max_per_img=10,
                    nms=dict(type='nms', iou_threshold=0.5)))))
    model.init_weights()
    assert_backbone_equal(model.backbone, stage1[1])


def test_torchvision_export_matches_features(stage1, tmp_path):
    import torchvision
    src, source = stage1
    dst = str(tmp_path / 'r18_tv.pth')
    export_backbone(src, dst, torchvision=True)
    net = torchvision.models.resnet18()
    result = net.load_state_dict(
        torch.load(dst, weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight']
    assert not result.unexpected_keys
    assert torch.equal(net.layer3[1].conv2.weight,
                       source['backbone.layer3.1.conv2.weight'])
    # same numbers, not only same names: layer4 output of both networks
    ours = MODELS.build(dict(type='mmpretrain.ResNet', depth=18))
    ours.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in source.items() if k.startswith('backbone.')
    })
    ours.eval(), net.eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        tv = torch.nn.Sequential(*list(net.children())[:-2])(x)
        torch.testing.assert_close(ours(x)[-1], tv)


def test_key_encoder_export_differs(stage1, tmp_path):
    src, source = stage1
    out = export_backbone(
        src, str(tmp_path / 'k.pth'), source_prefix=KEY_ENCODER_PREFIX)
    key = 'backbone.conv1.weight'
    assert torch.equal(out[key], source[KEY_ENCODER_PREFIX + 'conv1.weight'])
    assert not torch.equal(out[key], source[key])


def test_wrong_prefix_names_file_and_prefixes(stage1, tmp_path):
    src, _ = stage1
    with pytest.raises(
            KeyError,
            match=r'epoch_1\.pth.*no key starts with '
            r'"student\.".*backbone\.'):
        export_backbone(src, str(tmp_path / 'x.pth'), source_prefix='student.')
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        export_backbone(str(tmp_path / 'nothing.pth'), str(tmp_path / 'y'))


def test_torchvision_refuses_deep_stem_and_bad_shapes():
    v1c = MODELS.build(dict(type='mmpretrain.ResNetV1c', depth=18))
    sd = {'backbone.' + k: v for k, v in v1c.state_dict().items()}
    with pytest.raises(KeyError, match='deep stem'):
        to_torchvision(sd)
    r18 = MODELS.build(dict(type='mmpretrain.ResNet', depth=18))
    sd = {'backbone.' + k: v for k, v in r18.state_dict().items()}
    assert len(to_torchvision(sd)) == len(sd)  # depth guessed: 18
    with pytest.raises(KeyError, match='resnet34.*missing keys'):
        to_torchvision(sd, depth=34)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old')

    def broken_save(obj, f):
        f.write(b'partial')
        raise RuntimeError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(RuntimeError, match='disk full'):
        save_checkpoint_atomic({'a': 1}, str(dst))
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['out.pth']


def test_cli(stage1, tmp_path, monkeypatch, capsys, repo_root):
    src, source = stage1
    dst = str(tmp_path / 'cli.pth')
    sys.path.insert(0, osp.join(repo_root, 'tools', 'model_converters'))
    try:
        import export_backbone as cli
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(sys, 'argv', ['export_backbone.py', src, dst])
    cli.main()
    assert 'OpenMMLab (backbone.*) keys' in capsys.readouterr().out
    sd = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(sd['backbone.layer4.1.bn2.weight'],
                       source['backbone.layer4.1.bn2.weight'])


def test_cli_timm_folder(stage1, tmp_path, repo_root):
    """The user's path: the script in a subprocess, then timm offline."""
    import subprocess
    timm = pytest.importorskip('timm')
    src, source = stage1
    dst = str(tmp_path / 'r18_timm')
    script = osp.join(repo_root, 'tools', 'model_converters',
                      'export_backbone.py')
    cmd = [sys.executable, script, src, dst, '--format', 'timm']
    run = subprocess.run(
        cmd + ['--stage', 'mdmoco'], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 'r18_timm (folder)' in run.stdout
    model = timm.create_model(f'local-dir:{dst}', pretrained=True)
    assert torch.equal(model.layer4[1].bn2.weight,
                       source['backbone.layer4.1.bn2.weight'])
    card = open(osp.join(dst, 'MODEL_CARD.md')).read()
    assert 'Stage: stage 1, MD-MoCo' in card and '(given)' in card
    assert open(osp.join(dst, 'README.md')).read() == card  # the hub's


def test_cli_torchvision_alias_and_missing_src(stage1, tmp_path, monkeypatch,
                                               capsys, repo_root):
    src, source = stage1
    sys.path.insert(0, osp.join(repo_root, 'tools', 'model_converters'))
    try:
        import export_backbone as cli
    finally:
        sys.path.pop(0)
    dst = str(tmp_path / 'tv.pth')
    monkeypatch.setattr(sys, 'argv',
                        ['export_backbone.py', src, dst, '--torchvision'])
    with pytest.warns(FutureWarning, match='--format torchvision'):
        cli.main()
    assert 'torchvision keys' in capsys.readouterr().out
    assert 'fc.weight' not in torch.load(dst, weights_only=True)
    monkeypatch.setattr(sys, 'argv', [
        'export_backbone.py',
        str(tmp_path / 'nothing.pth'), dst, '--format', 'hf'
    ])
    with pytest.raises(SystemExit, match='Checkpoint not found.*nothing'):
        cli.main()
    monkeypatch.setattr(sys, 'argv',
                        ['export_backbone.py', src, dst, '--format', 'onnx'])
    with pytest.raises(SystemExit):
        cli.main()
    assert "invalid choice: 'onnx'" in capsys.readouterr().err
