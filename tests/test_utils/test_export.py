# Copyright (c) muscle_mm contributors. All rights reserved.
"""Backbone checkpoint -> timm / HF folder and torchvision file: the same
pooled features as the mmpretrain backbone, and an honest model card."""
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from muscle_mm.utils.export import (CARD_NAME, CONFIG_NAME, HUB_CARD_NAME,
                                    WEIGHTS_NAME, count_training_images,
                                    export, guess_stage, model_card,
                                    training_datasets, xray_input_config)

timm = pytest.importorskip('timm')

# what mmengine's runner saves as meta['cfg'] (pretty text), cut to the
# parts the card reads
STAGE1_CFG = """
model = dict(type='XrayMoCo', data_preprocessor=dict(
    type='mmpretrain.SelfSupDataPreprocessor',
    mean=[122.786, 122.786, 122.786], std=[18.39, 18.39, 18.39]))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)
train_dataloader = dict(dataset=dict(type='ConcatDataset', datasets=[
    dict(type='NIHChestXray14Dataset', data_root='NIH-ChestXray14'),
    dict(type='MURADataset', data_root='MURA-v1.1')],
    pipeline=[dict(type='LoadXrayImage'),
              dict(type='Resize', scale=(800, 500), keep_ratio=False)]))
"""


def random_backbone(depth: int) -> torch.nn.Module:
    """An mmpretrain ResNet with random weights and BN statistics (so that
    eval-mode outputs test the running stats too)."""
    from mmpretrain.models import ResNet
    torch.manual_seed(depth)
    net = ResNet(depth=depth)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    net.eval()  # mmpretrain's ResNet.train() returns None
    return net


@pytest.fixture(scope='module', params=[18, 50])
def stage1(request, tmp_path_factory):
    """A stage-1-like checkpoint (``backbone.*`` + a MoCo neck) and the
    backbone it holds."""
    net = random_backbone(request.param)
    state = {'backbone.' + k: v for k, v in net.state_dict().items()}
    state['neck.mlp.0.weight'] = torch.zeros(2, 2)
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_200.pth')
    torch.save(
        dict(
            meta=dict(epoch=200, iter=5000, cfg=STAGE1_CFG), state_dict=state),
        path)
    return path, net, request.param


def pooled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)[-1].mean((2, 3))


def test_timm_folder_gives_the_same_features(stage1, tmp_path):
    src, net, depth = stage1
    dst = str(tmp_path / 'timm')
    export(src, dst, 'timm')
    assert sorted(os.listdir(dst)) == sorted(
        [CARD_NAME, HUB_CARD_NAME, CONFIG_NAME, WEIGHTS_NAME])
    x = torch.randn(1, 3, 64, 40)
    expected = pooled(net, x)
    # the two ways README.md shows
    by_dir = timm.create_model(f'local-dir:{dst}', pretrained=True).eval()
    by_file = timm.create_model(
        f'resnet{depth}',
        pretrained=True,
        num_classes=0,
        pretrained_cfg_overlay=dict(
            file=osp.join(dst, WEIGHTS_NAME), num_classes=0)).eval()
    for model in (by_dir, by_file):
        with torch.no_grad():
            assert (model(x) - expected).abs().max() < 1e-5
    with open(osp.join(dst, CONFIG_NAME)) as f:
        config = json.load(f)
    assert config['architecture'] == f'resnet{depth}'
    assert config['num_classes'] == 0
    assert config['num_features'] == (512 if depth == 18 else 2048)
    data = timm.data.resolve_data_config(model=by_dir)
    assert tuple(data['input_size']) == (3, 500, 800
                                         )  # H x W: mmcv's (800, 500)
    assert data['mean'] == pytest.approx((122.786 / 255, ) * 3)
    assert data['std'] == pytest.approx((18.390 / 255, ) * 3)
    assert data['crop_pct'] == 1.0 and data['crop_mode'] == 'squash'
    # timm's own eval transform: any size squashed to H x W, the z-score on
    # 0-255 grey levels
    from PIL import Image
    grey = Image.new('L', (300, 700), 123).convert('RGB')
    x = timm.data.create_transform(**data)(grey)
    assert x.shape == (3, 500, 800)
    assert x.mean().item() == pytest.approx((123 - 122.786) / 18.390, 1e-4)


def test_torchvision_file_gives_the_same_features(stage1, tmp_path):
    import torchvision
    src, net, depth = stage1
    dst = str(tmp_path / 'tv.pth')
    export(src, dst, 'torchvision')
    with torch.device('meta'):  # every tensor comes from the file
        model = getattr(torchvision.models, f'resnet{depth}')()
    missing = model.load_state_dict(
        torch.load(dst, weights_only=True), strict=False,
        assign=True).missing_keys
    assert sorted(missing) == ['fc.bias', 'fc.weight']
    model.fc = torch.nn.Identity()
    x = torch.randn(1, 3, 64, 40)
    with torch.no_grad():
        assert (model.eval()(x) - pooled(net, x)).abs().max() < 1e-5


@pytest.mark.parametrize('stage1', [18], indirect=True)  # depth-free card
def test_model_card(stage1, tmp_path):
    src, _, depth = stage1
    table = dict(
        title='Table 2. Pneumonia and MURA classification',
        rows=[dict(dataset='Pneumonia', pretrain='MD-MoCo', auc=96.5812)],
        notes=['a note'])
    report = tmp_path / 'table2.json'
    report.write_text(json.dumps(table))
    dst = str(tmp_path / 'hf')
    with pytest.warns(UserWarning, match='could not be read here'):
        export(src, dst, 'hf', report=[str(report)])
    card = open(osp.join(dst, CARD_NAME)).read()
    assert open(osp.join(dst, HUB_CARD_NAME)).read() == card
    assert card.startswith('---\nlibrary_name: timm\n')
    assert 'stage 1, MD-MoCo: MoCo v2' in card
    assert '(from the training config)' in card
    assert 'mean 122.786, std 18.39' in card and '500 x 800' in card
    assert 'epoch 200, iteration 5000' in card and 'max_epochs=200' in card
    # only the datasets the config trains on, with their terms
    # (not counted: the config's data are not here)
    assert 'NIH ChestX-ray14 | - | 112,120 |' in card
    assert 'MURA v1.1 | - | 32,013 | Stanford research use' in card
    assert 'could not be read where this card was written' in card
    assert 'synthetic' not in card
    assert 'TBX11K' not in card
    assert '| Pneumonia | MD-MoCo | 96.58 |' in card
    # a file format writes the card only when asked, beside the file
    export(src, str(tmp_path / 'r18.pth'), card=str(tmp_path / 'r18.md'))
    assert 'library_name' not in (tmp_path / 'r18.md').read_text()
    # stage 2 began from stage 1's backbone: stage 1's data are listed too
    text = model_card('resnet18', 512, 'muscle', 'given', xray_input_config(),
                      training_datasets(None, 'muscle'), src)
    assert 'Stage: stage 2, MUSCLE: multi-task' in text
    assert 'TBX11K | - | 640 |' in text and 'TBX11K (stage 1 only)' not in text
    assert 'NIH ChestX-ray14 (stage 1 only) | - | 112,120 |' in text
    text = model_card(
        'resnet18',
        512,
        'muscle',
        'given',
        xray_input_config(),
        training_datasets(None, 'muscle'),
        src,
        counts=dict(tbx11k=5, mura=7, pneumonia=9, lung_masks=11),
        synthetic=True)
    assert '| TBX11K | 5 | 640 |' in text and '| MURA v1.1 | 7 |' in text
    assert 'NIH ChestX-ray14 (stage 1 only) | - | 112,120 |' in text
    assert "counted on the card of its own backbone" in text
    assert 'Trained on the synthetic demo data' in text
    with pytest.raises(ValueError, match='--stage muscle contradicts'):
        export(src, str(tmp_path / 'x'), 'timm', stage='muscle')


def test_stage_and_input_from_configs(repo_root):
    cfg = Config.fromstring(STAGE1_CFG, '.py')
    assert guess_stage(cfg) == 'mdmoco'
    assert xray_input_config(cfg)['size'] == (500, 800)
    cl = dict(train_cfg=dict(type='MultiTaskCLLoop'))
    assert guess_stage(Config(dict(cl, custom_hooks=[dict(type='L2SPHook')
                                                     ]))) == 'muscle'
    assert guess_stage(Config(dict(cl, custom_hooks=[]))) == 'muscle_minus'
    assert guess_stage(None) is None
    paper = xray_input_config()
    assert paper['mean'] == [122.786] * 3 and paper['size'] == (500, 800)
    # the study's configs, as a checkpoint saves them (pretty text)
    for name, stage, n_datasets in (('mdmoco_r18', 'mdmoco', 9), ('cl_r18',
                                                                  'muscle', 4),
                                    ('muscle_minus_r18', 'muscle_minus', 4)):
        text = Config.fromfile(
            osp.join(repo_root, 'configs', 'muscle', f'{name}.py')).pretty_text
        cfg = Config.fromstring(text, '.py')
        assert guess_stage(cfg) == stage, name
        assert len(training_datasets(cfg, None)) == n_datasets, name
        assert xray_input_config(cfg)['size'] == (500, 800), name


def test_errors(tmp_path):
    src = str(tmp_path / 'src.pth')  # the checks come before any loading
    open(src, 'wb').close()
    with pytest.raises(ValueError, match='Unknown export format "onnx"'):
        export(src, str(tmp_path / 'x'), 'onnx')
    with pytest.raises(FileNotFoundError, match='Checkpoint not found.*nope'):
        export(str(tmp_path / 'nope.pth'), str(tmp_path / 'x'), 'timm')
    (tmp_path / 'file').write_text('')
    with pytest.raises(FileExistsError, match='writes a folder'):
        export(src, str(tmp_path / 'file'), 'timm')
    with pytest.raises(FileNotFoundError, match='Report not found'):
        export(src, str(tmp_path / 'y'), 'timm', report=['missing.md'])
    assert not osp.exists(tmp_path / 'y')  # nothing written before the check


def test_card_counts_the_images_a_config_trains_on(demo_data_root, tmp_path,
                                                   monkeypatch, repo_root):
    """The demo configs' training images, counted through their readers,
    equal the split file's lines (stage 3); stage 1 counts each of the nine
    datasets; the demo data are recognised as synthetic."""
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(
        demo_data_root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    configs = osp.join(repo_root, 'configs', 'muscle')
    cfg = Config.fromfile(
        osp.join(configs, 'finetune', 'demo', 'pneumonia_r18_scratch_demo.py'))
    counts, synthetic = count_training_images(cfg)
    with open(osp.join(demo_data_root, 'chest_xray', 'muscle_splits',
                       'train.txt')) as f:
        assert counts == dict(pneumonia=sum(1 for line in f if line.strip()))
    assert synthetic
    stage1 = Config.fromfile(osp.join(configs, 'demo', 'mdmoco_r18_demo.py'))
    counts, synthetic = count_training_images(stage1)
    assert synthetic and sorted(counts) == sorted(
        ['nih', 'shenzhen', 'montgomery', 'indiana', 'rsna_boneage',
         'pneumonia', 'mura', 'lung_masks', 'tbx11k'])
    assert all(n > 0 for n in counts.values())


def test_card_states_how_the_bn_statistics_were_made(tmp_path):
    """The stage-2 checkpoint's ``meta['backbone_bn']`` (BackboneBNHook)
    reaches the card, also through the study's exported backbone file."""
    import torch

    from muscle_mm.utils.checkpoint import export_backbone
    bn = dict(method='precise BN, pooled over tasks', geometry='plain',
              images_per_task=dict(pneumonia=512, tbx=512), layers=20)
    src = tmp_path / 'epoch_40.pth'
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)},
                    meta=dict(backbone_bn=bn)), src)
    out = tmp_path / 'r18_muscle.pth'
    export_backbone(str(src), str(out))
    meta = torch.load(out, weights_only=True)['meta']
    text = model_card('resnet18', 512, 'muscle', 'given', xray_input_config(),
                      training_datasets(None, 'muscle'), str(out), meta=meta)
    assert '- BatchNorm statistics: re-estimated after training with the ' \
        'weights fixed (precise BN, pooled over tasks, plain geometry; ' \
        'training images per task: pneumonia 512, tbx 512)' in text
    plain = model_card('resnet18', 512, 'muscle', 'given',
                       xray_input_config(), [], str(out), meta={})
    assert 'BatchNorm statistics' not in plain
