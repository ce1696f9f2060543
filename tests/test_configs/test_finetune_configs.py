# Copyright (c) muscle_mm contributors. All rights reserved.
"""Stage-3 fine-tuning configs: the 4 tasks x 2 backbones x 5 initialisations
of the paper, their initialisers, the offline ImageNet path and a demo run."""
import argparse
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope

from muscle_mm.metainfo import INITS, TASKS
from muscle_mm.models.init import LocalPretrained
from muscle_mm.registry import MODELS
from muscle_mm.utils import register_all_modules

register_all_modules(init_default_scope=False)

REPO = str(Path(__file__).resolve().parents[2])
FINETUNE = osp.join(REPO, 'configs', 'muscle', 'finetune')
CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                     'torchvision_to_mmpretrain.py')
BACKBONES = ('r18', 'r50')
PRETRAINED_FILES = {
    'imagenet': 'data/pretrained/resnet{d}_imagenet.pth',
    'mdmoco': 'work_dirs/muscle_paper/backbones/r{d}_mdmoco.pth',
    'muscle_minus': 'work_dirs/muscle_paper/backbones/r{d}_muscle_minus.pth',
    'muscle': 'work_dirs/muscle_paper/backbones/r{d}_muscle.pth',
}
MODEL_TYPES = {
    'pneumonia': 'ImageClassifier',
    'mura': 'ImageClassifier',
    'lung': 'EncoderDecoder',
    'tbx': 'FasterRCNN',
}
LEAVES = [(t, b, i) for t in TASKS for b in BACKBONES for i in INITS]


@pytest.fixture(autouse=True)
def package_scope():
    """init_weights() resolves initialisers in the default scope, as the
    runner's."""
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        yield


def leaf(task: str, backbone: str, init: str) -> str:
    return osp.join(FINETUNE, f'{task}_{backbone}_{init}.py')


def demo(task: str, init: str = 'scratch') -> str:
    return osp.join(FINETUNE, 'demo', f'{task}_r18_{init}_demo.py')


def load(path: str, **options) -> Config:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def cli_options(*items: str) -> dict:
    """Parse ``--cfg-options`` the way tools/train.py does."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *items]).cfg_options


def random_torchvision(depth: int = 18, seed: int = 0) -> torch.nn.Module:
    """A torchvision ResNet with random weights *and* BN statistics, so that
    every tensor takes part in the comparisons (no download)."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _converter_module():
    spec = importlib.util.spec_from_file_location('torchvision_to_mmpretrain',
                                                  CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


converter = _converter_module()


def convert(tv: torch.nn.Module, folder) -> str:
    """torchvision state dict file -> the converter -> backbone checkpoint
    (in-process; the CLI runs in test_missing_imagenet_...)."""
    src, dst = str(folder / 'tv.pth'), str(folder / 'mm.pth')
    torch.save(tv.state_dict(), src)
    converter.convert(src, dst)
    return dst


@pytest.fixture(scope='module')
def tv18(tmp_path_factory):
    """(torchvision ResNet-18, its converted checkpoint)."""
    tv = random_torchvision(18, seed=18)
    return tv, convert(tv, tmp_path_factory.mktemp('tv18'))


@pytest.fixture(scope='module')
def tv50(tmp_path_factory):
    tv = random_torchvision(50, seed=50)
    return tv, convert(tv, tmp_path_factory.mktemp('tv50'))


def build_backbone_only(cfg: Config) -> torch.nn.Module:
    """The task model, with init_weights() applied to the backbone only
    (heads are outside what these tests check)."""
    model = MODELS.build(cfg.model)
    model.backbone.init_weights()
    return model.backbone


# ----------------------------------------------------------------- layout
def test_every_task_backbone_init_has_a_config():
    found = {osp.basename(p) for p in glob.glob(osp.join(FINETUNE, '*.py'))}
    expected = {f'{t}_{b}_{i}.py' for t, b, i in LEAVES}
    assert found == expected
    assert {
        osp.basename(p)
        for p in glob.glob(osp.join(FINETUNE, 'demo', '*.py'))
    } == {f'{t}_r18_{i}_demo.py'
          for t in TASKS for i in INITS}


@pytest.mark.parametrize('task,backbone',
                         [(t, b) for t in TASKS for b in BACKBONES])
def test_inits_differ_only_in_backbone_init(task, backbone):
    """Same data, model, schedule and runtime for the five columns of a
    table row; only model.backbone.init_cfg changes."""
    cfgs = {i: load(leaf(task, backbone, i)).to_dict() for i in INITS}
    # a `_delete_` that found nothing to delete would reach the initialiser
    assert all('_delete_' not in json.dumps(c, default=str)
               for c in cfgs.values())
    init_cfgs = {
        i: c['model']['backbone'].pop('init_cfg')
        for i, c in cfgs.items()
    }
    for init in INITS[1:]:
        assert cfgs[init] == cfgs['scratch'], init
    assert len({json.dumps(v, sort_keys=True)
                for v in init_cfgs.values()}) == 5


def test_schedules_are_weight_decay_and_step_lr():
    """Sec. 2.3: vanilla weight decay and step decay of the LR."""
    for task in TASKS:
        cfg = load(leaf(task, 'r18', 'scratch'))
        assert cfg.optim_wrapper.optimizer.type == 'SGD'
        assert cfg.optim_wrapper.optimizer.weight_decay > 0
        steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
        assert len(steps) == 1 and steps[0].gamma == 0.1
        assert max(steps[0].milestones) < cfg.train_cfg.max_epochs


@pytest.mark.parametrize('task', TASKS)
def test_loops_build_in_the_package_scope(task):
    """A loop built in another library's scope (an inherited `mmdet::`
    schedule sets `_scope_`) would look our datasets up there."""
    for cfg in (load(leaf(task, 'r50', 'scratch')), load(demo(task))):
        for key in ('train_cfg', 'val_cfg', 'test_cfg'):
            assert '_scope_' not in cfg[key], key
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            assert '_scope_' not in cfg[loader].dataset, loader
        # ASPP's image-pool BN cannot train on a batch of one image
        assert cfg.train_dataloader.get('drop_last', False) == (task == 'lung')


@pytest.mark.parametrize('task', TASKS)
def test_metrics_are_the_papers(task):
    cfg = load(leaf(task, 'r18', 'scratch'))
    expected = dict(
        pneumonia='BinaryClassificationMetric',
        mura='BinaryClassificationMetric',
        lung='LungSegMetric',
        tbx='TBDetectionMetric')[task]
    for c in (cfg, load(demo(task))):
        assert c.val_evaluator.type == expected
        assert c.test_evaluator.type == expected
    if expected == 'BinaryClassificationMetric':
        assert cfg.test_evaluator.roc_file == 'roc_test.json'
        assert cfg.val_evaluator.roc_file == 'roc_val.json'
    if task == 'tbx':
        # ground truth from the dataset, so its uncertain_tb is the only one
        for c in (cfg, load(demo(task))):
            assert c.val_evaluator.get('ann_file') is None
            assert c.test_evaluator.get('ann_file') is None


# ------------------------------------------------------------ build / init
@pytest.mark.parametrize('task,backbone',
                         [(t, b) for t in TASKS for b in BACKBONES])
def test_models_build_in_the_package_scope(task, backbone):
    depth = int(backbone[1:])
    cfg = load(leaf(task, backbone, 'mdmoco'))
    assert cfg.default_scope == 'muscle_mm'
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == MODEL_TYPES[task]
    assert model.backbone.depth == depth
    # the backbone takes the keys of an exported stage-1/2 backbone
    assert 'layer4.1.conv1.weight' in model.backbone.state_dict()


@pytest.mark.parametrize('task', TASKS)
def test_demo_configs_build_and_are_small(task):
    cfg = load(demo(task))
    assert type(MODELS.build(cfg.model)).__name__ == MODEL_TYPES[task]
    assert cfg.train_dataloader.dataset.data_root.startswith('data/demo/')
    # batch 8 (classification) / 4 (detection) for steadier BatchNorm, and
    # the epochs a task needs to beat its trivial baseline (issue 13)
    assert cfg.train_dataloader.batch_size <= 8
    assert cfg.train_cfg.max_epochs <= 10
    # the same initialisations as the full scale, from the demo study's files
    for init in INITS:
        init_cfg = load(demo(task, init)).model.backbone.init_cfg
        full = load(leaf(task, 'r18', init)).model.backbone.init_cfg
        if init in ('scratch', 'imagenet'):
            assert init_cfg == full
        else:
            assert init_cfg.checkpoint == full.checkpoint.replace(
                'muscle_paper', 'muscle_demo')


@pytest.mark.parametrize('task', TASKS)
def test_scratch_is_kaiming(task):
    """Kaiming normal, fan_out, ReLU gain (He et al. 2015): the std of every
    convolution's weights is sqrt(2 / fan_out); BN weight 1, bias 0."""
    cfg = load(leaf(task, 'r18', 'scratch'))
    kaiming = [c for c in cfg.model.backbone.init_cfg if c.type == 'Kaiming']
    assert len(kaiming) == 1 and kaiming[0].layer == 'Conv2d'
    torch.manual_seed(0)
    backbone = build_backbone_only(cfg)
    for name, m in backbone.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            expected = math.sqrt(2.0 / fan_out)
            assert abs(m.weight.std().item() / expected - 1) < 0.1, name
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name


@pytest.mark.parametrize('task,backbone,init',
                         [x for x in LEAVES if x[2] != 'scratch'])
def test_pretrained_inits_point_at_their_files(task, backbone, init):
    init_cfg = load(leaf(task, backbone, init)).model.backbone.init_cfg
    assert init_cfg.type == 'LocalPretrained'
    assert init_cfg.prefix == 'backbone.'
    assert init_cfg.source == init
    assert init_cfg.checkpoint == PRETRAINED_FILES[init].format(d=backbone[1:])


@pytest.mark.parametrize('task', TASKS)
def test_missing_stage_backbone_says_how_to_make_it(task, tmp_path):
    missing = str(tmp_path / 'nowhere' / 'r18_muscle.pth')
    cfg = load(
        leaf(task, 'r18', 'muscle'),
        **{'model.backbone.init_cfg.checkpoint': missing})
    with pytest.raises(FileNotFoundError) as err:
        build_backbone_only(cfg)
    msg = str(err.value)
    assert 'MUSCLE (stage 2) ResNet-18' in msg and missing in msg
    assert 'export_backbone.py' in msg
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in msg


def test_missing_imagenet_says_what_to_put_where(tmp_path):
    """The message's own commands make the file: its converter line, run on
    a random torchvision ResNet-18 saved where the first line would save
    the real one, gives a checkpoint the same config then loads."""
    target = str(tmp_path / 'data' / 'pretrained' / 'resnet18_imagenet.pth')
    cfg = load(
        leaf('pneumonia', 'r18', 'imagenet'),
        **{'model.backbone.init_cfg.checkpoint': target})
    with pytest.raises(FileNotFoundError) as err:
        build_backbone_only(cfg)
    msg = str(err.value)
    assert msg.startswith(f'ImageNet ResNet-18 weights not found at {target}.')
    assert 'cannot download' in msg
    download = next(line for line in msg.splitlines()
                    if 'IMAGENET1K_V1' in line)
    assert 'torchvision.models.resnet18(' in download
    convert_line = next(line for line in msg.splitlines()
                        if 'torchvision_to_mmpretrain.py' in line)
    args = shlex.split(convert_line)
    saved_by_download = re.search(r"'(resnet18_torchvision\.pth)'",
                                  download).group(1)
    assert args[-2] == saved_by_download and args[-1] == target

    tv = random_torchvision(18)
    torch.save(tv.state_dict(), str(tmp_path / saved_by_download))
    subprocess.run(
        [sys.executable, osp.join(REPO, args[1]), *args[2:]],
        cwd=str(tmp_path),
        check=True,
        capture_output=True)
    backbone = build_backbone_only(cfg)
    tv_state = tv.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, tv_state[key]), key


# --------------------------------------------------------------- converter
@pytest.mark.parametrize('depth', [18, 50])
def test_converter_round_trip_matches_torchvision(depth, request):
    """torchvision -> converter -> the pneumonia ImageNet config's own
    backbone: same features as torchvision's trunk on the same input."""
    tv, ckpt = request.getfixturevalue(f'tv{depth}')
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    assert all(k.startswith('backbone.') for k in saved)
    assert not any(k.startswith('backbone.fc.') for k in saved)
    cfg = load(
        leaf('pneumonia', f'r{depth}', 'imagenet'),
        **{'model.backbone.init_cfg.checkpoint': ckpt})
    backbone = build_backbone_only(cfg)
    backbone.eval()  # mmpretrain's ResNet.train() returns None
    trunk = torch.nn.Sequential(*list(tv.children())[:-2])
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = backbone(x)[-1], trunk(x)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize('task', ['lung', 'tbx'])
def test_converted_weights_load_into_mmseg_and_mmdet(task, tv18):
    tv, ckpt = tv18
    cfg = load(
        leaf(task, 'r18', 'imagenet'),
        **{'model.backbone.init_cfg.checkpoint': ckpt})
    backbone = build_backbone_only(cfg)
    tv_state = tv.state_dict()
    own = backbone.state_dict()
    assert set(own) == set(tv_state) - {'fc.weight', 'fc.bias'}
    for key, value in own.items():
        assert torch.equal(value, tv_state[key]), key


def test_converter_rejects_a_mismatching_state_dict(tv18, tmp_path):
    state = tv18[0].state_dict()
    del state['layer3.1.conv2.weight']
    torch.save(state, str(tmp_path / 'broken.pth'))
    with pytest.raises(KeyError, match='layer3.1.conv2.weight'):
        converter.convert(
            str(tmp_path / 'broken.pth'), str(tmp_path / 'out.pth'), 18)
    assert not osp.exists(tmp_path / 'out.pth')
    with pytest.raises(KeyError, match='resnet50'):  # wrong depth
        converter.torchvision_to_mmpretrain(tv18[0].state_dict(), 50)


# ------------------------------------------------------ LocalPretrained
def test_local_pretrained_rejects_wrong_depth_and_raw_torchvision(
        tv18, tv50, tmp_path):
    cfg = load(
        leaf('mura', 'r18', 'mdmoco'),
        **{'model.backbone.init_cfg.checkpoint': tv50[1]})
    with pytest.raises(KeyError, match='does not fit ResNet'):
        build_backbone_only(cfg)
    raw = str(tmp_path / 'raw.pth')
    torch.save(tv18[0].state_dict(), raw)
    cfg = load(
        leaf('mura', 'r18', 'imagenet'),
        **{'model.backbone.init_cfg.checkpoint': raw})
    with pytest.raises(KeyError, match='torchvision_to_mmpretrain.py'):
        build_backbone_only(cfg)


def test_local_pretrained_refuses_urls():
    with pytest.raises(ValueError, match='no internet'):
        LocalPretrained(checkpoint='torchvision://resnet18')
    with pytest.raises(ValueError, match='source must be one of'):
        LocalPretrained(checkpoint='x.pth', source='imagenet21k')


def test_pipeline_overrides_the_backbone_file(tv18):
    """Full and demo configs: the study's one option swaps the checkpoint."""
    from muscle_mm.apis.study import MuscleStudy
    tv, ckpt = tv18
    expected = tv.state_dict()
    for config in (leaf('pneumonia', 'r18', 'muscle'),
                   demo('pneumonia', 'muscle')):
        cfg = load(config)
        cfg.merge_from_dict(cli_options(*MuscleStudy.init_options(ckpt)))
        backbone = build_backbone_only(cfg)
        for key, value in backbone.state_dict().items():
            assert torch.equal(value, expected[key]), key


# ------------------------------------------------------------ end to end
@pytest.mark.slow
def test_demo_pneumonia_trains_and_tests(tmp_path):
    """tools/train.py for one epoch on generated demo data, then
    tools/test.py gives Table 2's figures and the ROC JSON."""
    from muscle_mm.testing import generate_demo_data
    generate_demo_data(
        str(tmp_path / 'data' / 'demo'),
        seed=0,
        scale=0.5,
        datasets=['pneumonia'])
    env = dict(os.environ, OMP_NUM_THREADS='2')

    def run(*cmd):
        proc = subprocess.run([sys.executable, *cmd],
                              cwd=str(tmp_path),
                              env=env,
                              capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    run(
        osp.join(REPO, 'tools', 'dataset_converters', 'make_splits.py'),
        '--data-root', 'data/demo', '--datasets', 'pneumonia')
    work_dir = tmp_path / 'work'
    run(
        osp.join(REPO, 'tools', 'train.py'), demo('pneumonia'), '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1')
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()

    metrics_file = tmp_path / 'metrics.json'
    run(
        osp.join(REPO, 'tools',
                 'test.py'), demo('pneumonia'), str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--out', str(metrics_file), '--cfg-options',
        f'test_evaluator.out_dir={work_dir}')
    metrics = json.loads(metrics_file.read_text())
    for key in ('accuracy', 'sensitivity', 'specificity', 'auc', 'auc_ci_low',
                'auc_ci_high'):
        assert 0 <= metrics[f'binary/{key}'] <= 100, key
    assert metrics['binary/auc_ci_low'] <= metrics['binary/auc_ci_high']
    roc = json.loads((work_dir / 'roc_test.json').read_text())
    assert roc['auc'] == pytest.approx(metrics['binary/auc'] / 100)
    assert roc['fpr'][0] == 0 and roc['tpr'][-1] == 1
