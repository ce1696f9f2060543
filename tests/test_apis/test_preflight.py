# Copyright (c) muscle_mm contributors. All rights reserved.
"""``tools/run_muscle.py --preflight``: passes on sound inputs and names
each injected fault (the demo data linked as data/, paper configs)."""
import math
import os.path as osp
import shutil
import subprocess
import sys
from pathlib import Path
from collections import namedtuple
from unittest import mock

import pytest
import torch

from muscle_mm.apis.preflight import Preflight, iters_per_epoch, measure_step
from muscle_mm.apis.study import MuscleStudy, StudySettings
from muscle_mm.datasets.readers import TABLE1
from muscle_mm.registry import MODELS
from muscle_mm.utils import register_all_modules

register_all_modules(init_default_scope=False)
REPO = str(Path(__file__).resolve().parents[2])


def link_data(tmp_path, demo_data_root, leave_out=(), copy=()):
    """``data/`` of the current directory: one link per dataset of the demo
    data (paper configs), ``data/demo`` (demo configs); ``copy`` makes real
    copies one may damage, ``leave_out`` omits datasets."""
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'demo').symlink_to(demo_data_root, target_is_directory=True)
    for key, info in TABLE1.items():
        if key in leave_out:
            continue
        src = osp.join(demo_data_root, info['folder'])
        if key in copy:
            shutil.copytree(src, data / info['folder'])
        else:
            (data / info['folder']).symlink_to(src, target_is_directory=True)
    return data


def preflight(**settings):
    study = MuscleStudy(
        StudySettings(work_dir='work_dirs/muscle_paper', scale='paper',
                      **settings),
        log=lambda m: 0)
    return Preflight(study, memory=False, log=lambda m: 0).run()


def failures(checks):
    return [(c.section, c.subject, c.detail) for c in checks if c.failed]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------- passes
def split_count(root, folder, split):
    with open(osp.join(root, folder, 'muscle_splits', f'{split}.txt')) as f:
        return sum(1 for line in f if line.strip())


@pytest.mark.slow
def test_preflight_passes_on_demo_data_with_paper_configs(
        in_tmp, demo_data_root):
    link_data(in_tmp, demo_data_root)
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/run_muscle.py'), '--scale', 'paper',
        '--backbones', 'r18', '--gpus', '2', '--preflight', '--skip-memory'
    ],
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    table = proc.stdout
    assert table.rstrip().endswith(', 0 failed')
    for section in ('data', 'config', 'init', 'schedule', 'disk'):
        assert f'\n{section} ' in '\n' + table, section
    assert 'made by stage 1' in table and 'made by stage 2' in table
    # Eq. 1's period for 2 processes, by hand from the split files: each
    # process gets ceil(n / 2) images, in batches of the dataset configs
    # (pneumonia, mura 16, lung 8, tbx 4 keeping only images with boxes)
    counts = dict(
        pneumonia=split_count(demo_data_root, 'chest_xray', 'train'),
        mura=split_count(demo_data_root, 'MURA-v1.1', 'train'),
        lung=split_count(demo_data_root, 'Lung Segmentation', 'train'),
        tbx=split_count(demo_data_root, 'TBX11K', 'train'))
    batch = dict(pneumonia=16, mura=16, lung=8, tbx=4)
    per_round = sum(
        math.ceil(math.ceil(n / 2) / batch[t]) for t, n in counts.items())
    line = next(ln for ln in table.splitlines()
                if ln.startswith('schedule') and ' muscle_r18 ' in ln)
    assert f'Eq. 1 T = {per_round};' in line
    assert 'LR 0.01 x 2 = 0.02' in line


def test_iters_per_epoch_matches_mmengine_sampler_on_each_rank():
    from mmengine.dataset import DefaultSampler
    for n in (1, 7, 64, 65, 101):
        for world in (1, 2, 3, 8):
            for batch in (1, 4, 16):
                for drop_last in (False, True):
                    with mock.patch('mmengine.dataset.sampler.get_dist_info',
                                    return_value=(world - 1, world)):
                        sampler = DefaultSampler(list(range(n)), seed=0)
                    loader = torch.utils.data.DataLoader(
                        list(range(n)),
                        batch_size=batch,
                        sampler=sampler,
                        drop_last=drop_last)
                    assert iters_per_epoch(n, batch, world,
                                           drop_last) == len(loader)


# ----------------------------------------------------------------- faults
def test_missing_dataset(in_tmp, demo_data_root):
    link_data(in_tmp, demo_data_root, leave_out=['mura'])
    failed = failures(preflight(tasks=['mura'], inits=['scratch']))
    assert ('data', 'mura',
            f'{in_tmp}/data/MURA-v1.1 not found; docs/datasets.md says where '
            'to get it and the layout it must have') in failed


def test_missing_split_file(in_tmp, demo_data_root):
    data = link_data(in_tmp, demo_data_root, copy=['lung_masks'])
    missing = data / 'Lung Segmentation' / 'muscle_splits' / 'test.txt'
    missing.unlink()
    failed = failures(preflight(tasks=['lung'], inits=['scratch']))
    data_fail = [f for f in failed if f[:2] == ('data', 'lung_masks/test')]
    assert data_fail and f'split file {missing} not found' in data_fail[0][2]
    assert 'make_splits.py' in data_fail[0][2]
    # the run's config cannot build its test dataloader either
    assert any(f[:2] == ('config', 'finetune/lung_r18_scratch')
               for f in failed)


def test_checkpoint_of_another_depth(in_tmp, demo_data_root):
    link_data(in_tmp, demo_data_root)
    r50 = MODELS.build(dict(type='mmpretrain.ResNet', depth=50))
    path = in_tmp / 'resnet50_as_r18.pth'
    torch.save(
        dict(state_dict={f'backbone.{k}': v
                         for k, v in r50.state_dict().items()}), path)
    failed = failures(
        preflight(
            tasks=['pneumonia'], inits=['imagenet'],
            imagenet=dict(r18=str(path))))
    assert len(failed) == 1
    section, subject, detail = failed[0]
    assert (section, subject) == ('init',
                                  'finetune/pneumonia_r18_imagenet <- imagenet')
    assert f'{path} does not fit ResNet(depth=18)' in detail
    assert 'another depth or architecture' in detail


def test_missing_imagenet_file_given(in_tmp, demo_data_root):
    link_data(in_tmp, demo_data_root)
    failed = failures(
        preflight(
            tasks=['pneumonia'],
            inits=['imagenet'],
            imagenet=dict(r18='/nowhere/resnet18.pth')))
    assert [f[:2] for f in failed] == [
        ('init', 'finetune/pneumonia_r18_imagenet <- imagenet')
    ]
    assert 'ImageNet ResNet-18 weights not found at /nowhere/resnet18.pth' \
        in failed[0][2]


def test_period_that_disagrees_with_the_loop(in_tmp, demo_data_root,
                                             monkeypatch):
    link_data(in_tmp, demo_data_root)
    edited = in_tmp / 'cl_r18_period.py'
    edited.write_text(
        f"_base_ = ['{REPO}/configs/muscle/cl_r18.py']\n"
        'param_scheduler = dict(period=2544)  # counted by hand\n')
    original = MuscleStudy.stage_config
    monkeypatch.setattr(
        MuscleStudy, 'stage_config', lambda self, name: str(edited)
        if name == 'cl_r18' else original(self, name))
    failed = failures(preflight(tasks=['pneumonia'], inits=['muscle']))
    assert [f[:2] for f in failed] == [('schedule', 'muscle_r18')]
    assert 'period=2544 iterations, but one round of this run is' in \
        failed[0][2]
    assert "Use period='round'" in failed[0][2]


def test_exclude_leaks_checks_stage1_before_and_after_the_audit(
        in_tmp, demo_data_root):
    """``--exclude-leaks``: before the audit has run, stage 1's ``_noleak``
    config is checked with the whole union and a line says the audit makes
    the list; once the list exists, it is read and counted."""
    link_data(in_tmp, demo_data_root)

    def stage1_lines():
        checks = preflight(tasks=['pneumonia'], inits=['mdmoco'],
                           exclude_leaks=True)
        assert failures(checks) == []
        return {(c.section, c.subject): c for c in checks
                if c.subject.startswith('mdmoco_r18')}

    lines = stage1_lines()
    assert 'mdmoco_r18_noleak' in lines[('config', 'mdmoco_r18')].detail
    made = lines[('init', 'mdmoco_r18 exclusions')]
    assert made.status == 'made by the audit', made
    listed = in_tmp / 'work_dirs' / 'muscle_paper' / 'audit' / \
        'stage1_exclude.txt'
    listed.parent.mkdir(parents=True)
    nih = osp.join(demo_data_root, TABLE1['nih']['folder'])
    first = sorted(Path(nih).rglob('*.png'))[0]
    listed.write_text(f'{first}\n')
    found = stage1_lines()[('init', 'mdmoco_r18 exclusions')]
    assert (found.status, found.detail) == (
        'ok', f'1 image(s) left out, listed in {listed}')


def test_full_disk(in_tmp, demo_data_root, monkeypatch):
    link_data(in_tmp, demo_data_root)
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr('muscle_mm.apis.preflight.shutil.disk_usage',
                        lambda path: usage(2**20, 2**20 - 4096, 4096))
    failed = failures(preflight(tasks=['pneumonia'], inits=['scratch']))
    assert len(failed) == 1 and failed[0][0] == 'disk'
    assert '0.00 GiB free' in failed[0][2]
    assert 'choose another --work-dir' in failed[0][2]


# ----------------------------------------------------------------- memory
@pytest.mark.slow
def test_memory_of_one_step_at_the_configured_batch(in_tmp, demo_data_root):
    """Paper config (800x500, batch 16): the peak holds at least weights,
    gradients and momentum; the demo CL step goes through every task."""
    link_data(in_tmp, demo_data_root)
    paper = measure_step(
        osp.join(REPO, 'configs/muscle/finetune/pneumonia_r18_scratch.py'))
    weights = 11.2e6 * 4
    assert paper['batch'] == 16
    assert (paper['device'] == 'CPU') is not torch.cuda.is_available()
    assert paper['peak'] > 3 * weights
    demo = measure_step(osp.join(REPO, 'configs/muscle/demo/cl_r18_demo.py'))
    assert set(demo['tasks']) == {'pneumonia', 'mura', 'lung', 'tbx'}
    assert demo['peak'] == max(demo['tasks'].values()) > 3 * weights
    # a smaller image costs less: the paper step needs more than the demo's
    assert paper['peak'] > demo['tasks']['pneumonia']


# ------------------------------------------- multi-GPU lines and faults
def test_warmup_written_in_iterations_fails_at_eight_gpus(
        in_tmp, demo_data_root, monkeypatch):
    link_data(in_tmp, demo_data_root)
    edited = in_tmp / 'tbx_r18_scratch_iters.py'
    edited.write_text(
        f"_base_ = ['{REPO}/configs/muscle/finetune/tbx_r18_scratch.py']\n"
        'param_scheduler = [dict(type="LinearLR", start_factor=0.001, '
        'by_epoch=False, begin=0, end=500), dict(type="MultiStepLR", '
        'by_epoch=True, begin=0, end=12, milestones=[8, 11], gamma=0.1)]\n')
    original = MuscleStudy.finetune_config
    monkeypatch.setattr(
        MuscleStudy, 'finetune_config',
        lambda self, task, backbone, init: str(edited)
        if task == 'tbx' else original(self, task, backbone, init))
    checks = preflight(tasks=['tbx'], inits=['scratch'], gpus=8)
    failed = failures(checks)
    assert [f[:2] for f in failed] == [('schedule', 'finetune/tbx_r18_scratch')]
    assert 'LinearLR ends at iteration 500, after the run ends' in failed[0][2]
    assert 'at world size 8' in failed[0][2]
    # the shipped config (its warm-up in epochs) fits on 8 GPUs
    monkeypatch.setattr(MuscleStudy, 'finetune_config', original)
    assert failures(preflight(tasks=['tbx'], inits=['scratch'], gpus=8)) == []


def test_bn_line_and_a_config_without_the_buffer_sync(
        in_tmp, demo_data_root, monkeypatch):
    link_data(in_tmp, demo_data_root)
    checks = preflight(tasks=['pneumonia'], inits=['scratch'], gpus=2)
    line = next(c for c in checks if c.section == 'bn')
    assert line.status == 'ok'
    assert 'averaged over the 2 processes before every validation, test ' \
        'and checkpoint (BufferSyncHook)' in line.detail
    edited = in_tmp / 'pneumonia_no_sync.py'
    edited.write_text(
        "_base_ = ['" + REPO + "/configs/muscle/finetune/"
        "pneumonia_r18_scratch.py']\ndefault_hooks = dict(sync_buffers="
        "dict(_delete_=True, type='SyncBuffersHook'))\n")
    monkeypatch.setattr(MuscleStudy, 'finetune_config',
                        lambda self, task, backbone, init: str(edited))
    failed = failures(preflight(tasks=['pneumonia'], inits=['scratch'],
                                gpus=2))
    assert [f[:2] for f in failed] == [('bn', 'finetune/pneumonia_r18_scratch')]
    assert 'no BufferSyncHook' in failed[0][2]
    # one process has nothing to keep equal
    assert failures(preflight(tasks=['pneumonia'], inits=['scratch'])) == []


def test_resume_written_on_another_number_of_gpus(in_tmp, demo_data_root):
    link_data(in_tmp, demo_data_root)
    work = in_tmp / 'work_dirs' / 'muscle_paper' / 'finetune' / \
        'pneumonia_r18_scratch'
    work.mkdir(parents=True)
    geometry = dict(world_size=8, batch_size={'': 16},
                    iters_per_epoch={'': 1}, effective_batch={'': 128})
    torch.save(dict(meta=dict(run_geometry=geometry), state_dict={}),
               work / 'epoch_3.pth')
    failed = failures(preflight(tasks=['pneumonia'], inits=['scratch'],
                                gpus=4))
    assert [f[:2] for f in failed] == [('resume',
                                        'finetune/pneumonia_r18_scratch')]
    assert 'epoch_3.pth was trained at world size 8' in failed[0][2]
    assert '--gpus 4 would stop on resume. Use --gpus 8' in failed[0][2]
    checks = preflight(tasks=['pneumonia'], inits=['scratch'], gpus=8)
    assert failures(checks) == []
    assert any(c.section == 'resume' and c.status == 'ok' for c in checks)


def test_init_file_with_non_finite_values(in_tmp, demo_data_root):
    link_data(in_tmp, demo_data_root)
    r18 = MODELS.build(dict(type='mmpretrain.ResNet', depth=18))
    state = {f'backbone.{k}': v for k, v in r18.state_dict().items()}
    state['backbone.layer2.0.conv1.weight'][0, 0, 0, 0] = float('nan')
    path = in_tmp / 'diverged.pth'
    torch.save(dict(state_dict=state), path)
    failed = failures(
        preflight(tasks=['pneumonia'], inits=['imagenet'],
                  imagenet=dict(r18=str(path))))
    assert [f[:2] for f in failed] == [
        ('init', 'finetune/pneumonia_r18_imagenet <- imagenet')]
    assert 'holds NaN or Inf in 1 backbone tensor(s), e.g. ' \
        "['layer2.0.conv1.weight']" in failed[0][2]
