"""``tools/test.py`` refuses a checkpoint that is not the config's model
(issue 13 item 1), through the tool as a user runs it."""
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from muscle_mm.registry import MODELS
from muscle_mm.utils import register_all_modules
from muscle_mm.utils.checkpoint_checks import (CheckpointMismatchError,
                                               check_checkpoint_fits)

REPO = str(Path(__file__).resolve().parents[2])
DEMO = osp.join(REPO, 'configs', 'muscle', 'finetune', 'demo')
LUNG = osp.join(DEMO, 'lung_r18_scratch_demo.py')
PNEUMONIA = osp.join(DEMO, 'pneumonia_r18_scratch_demo.py')


def build_model(config: str) -> torch.nn.Module:
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    return model


def save(model: torch.nn.Module, path, experiment_name: str) -> str:
    """A checkpoint laid out as tools/train.py writes them."""
    torch.save(
        dict(
            meta=dict(epoch=1, experiment_name=experiment_name),
            state_dict=model.state_dict()), path)
    return str(path)


@pytest.fixture(scope='module')
def lung_demo(tmp_path_factory):
    """Working folder with the lung miniature and its split files under
    data/demo, where the demo configs look."""
    from muscle_mm.testing import generate_demo_data
    cwd = tmp_path_factory.mktemp('lung_demo')
    generate_demo_data(
        str(cwd / 'data' / 'demo'),
        seed=0,
        scale=0.5,
        datasets=['lung_masks'])
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'dataset_converters', 'make_splits.py'),
        '--data-root', 'data/demo', '--datasets', 'lung_masks'
    ],
                   cwd=str(cwd),
                   check=True,
                   capture_output=True)
    return cwd


def run_test_tool(cwd, config: str, checkpoint: str, *extra):
    return subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir',
        str(cwd / 'test'), *extra
    ],
                          cwd=str(cwd),
                          env=dict(os.environ, OMP_NUM_THREADS='2'),
                          capture_output=True,
                          text=True,
                          timeout=600)


def test_test_tool_refuses_a_checkpoint_of_another_model(lung_demo):
    """A pneumonia classifier's checkpoint under the lung config stops with
    the file, the missing and unexpected keys and their counts (it used to
    print Dice/IoU of a random decoder and exit 0)."""
    ckpt = save(
        build_model(PNEUMONIA), lung_demo / 'pneumonia.pth',
        'pneumonia_r18_scratch_demo')
    proc = run_test_tool(lung_demo, LUNG, ckpt, '--out',
                         str(lung_demo / 'wrong.json'))
    assert proc.returncode != 0
    err = proc.stderr
    assert 'CheckpointMismatchError' in err
    lung = build_model(LUNG).state_dict()
    pneumonia = torch.load(ckpt, weights_only=True)['state_dict']
    missing = [k for k in lung if k not in pneumonia]
    unexpected = [k for k in pneumonia if k not in lung]
    for part in (f'Checkpoint {ckpt}', "'pneumonia_r18_scratch_demo'",
                 f'{len(missing)} of the {len(lung)} tensors of '
                 'EncoderDecoder are missing', missing[0],
                 f'{len(unexpected)} of its {len(pneumonia)} tensors are not '
                 'in the model', unexpected[0]):
        assert part in err, part
    assert not (lung_demo / 'wrong.json').exists()


@pytest.mark.slow
def test_test_tool_accepts_the_configs_checkpoint_and_agrees_with_test_last(
        lung_demo):
    """The lung model's own checkpoint, written by ``tools/train.py
    --test-last`` as the study runs it: ``tools/test.py`` on it gives the
    very metrics the training process wrote after its last epoch."""
    work = lung_demo / 'train'
    in_training = lung_demo / 'test_last.json'
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), LUNG, '--work-dir',
        str(work), '--test-last', '--test-out',
        str(in_training), '--cfg-options', 'train_cfg.max_epochs=1'
    ],
                          cwd=str(lung_demo),
                          env=dict(os.environ, OMP_NUM_THREADS='2'),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = (work / 'last_checkpoint').read_text().strip()
    assert osp.basename(ckpt) == 'epoch_1.pth'
    out = lung_demo / 'metrics.json'
    proc = run_test_tool(lung_demo, LUNG, ckpt, '--out', str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert 0 <= metrics['lung/Dice'] <= 100
    assert json.loads(in_training.read_text()) == metrics


def test_test_tool_names_the_images_of_a_diverged_model(lung_demo):
    """A diverged model (weights overflowing to inf logits) stops the lung
    test with the images named (issue 13 item 11), not a Dice of argmax
    artefacts."""
    model = build_model(LUNG)
    with torch.no_grad():
        model.decode_head.conv_seg.weight.fill_(3e38)
    ckpt = save(model, lung_demo / 'diverged.pth', 'lung')
    proc = run_test_tool(lung_demo, LUNG, ckpt)
    assert proc.returncode != 0
    test_split = (lung_demo / 'data/demo/Lung Segmentation/muscle_splits/'
                  'test.txt').read_text().split()
    assert (f'LungSegMetric (seg_logits): the model produced NaN or infinite '
            f'scores for {len(test_split)} of {len(test_split)} samples'
            ) in proc.stderr
    assert osp.basename(test_split[0]) in proc.stderr


def test_check_checkpoint_fits_shapes_and_extra_keys(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    state = model.state_dict()
    # a DDP-saved file with one extra tensor: fits (the extra one warns)
    path = str(tmp_path / 'ddp.pth')
    torch.save(
        dict(
            state_dict={
                **{f'module.{k}': v
                   for k, v in state.items()}, 'module.extra': torch.zeros(1)
            }), path)
    check_checkpoint_fits(model, path)
    # another width: every shape named, no key missing
    wider = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    path = str(tmp_path / 'wider.pth')
    torch.save(wider.state_dict(), path)  # a bare state dict
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(model, path)
    assert '0.weight (4, 3) in the file vs (2, 3) in the model' in str(
        err.value)
    assert 'have another shape' in str(err.value)
    assert 'missing' not in str(err.value)
