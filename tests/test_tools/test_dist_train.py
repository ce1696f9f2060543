# Copyright (c) muscle_mm contributors. All rights reserved.
"""Several processes, one result: the demo configs through
``tools/dist_train.sh`` with 2 gloo processes on the CPU.

Each run adds :mod:`rank_probe` (tests/data) to the real config, which
records per rank the task orders, the LR of every iteration and a digest of
the BN buffers at every validation and test.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from muscle_mm.engine.loops.cl_schedule import CLScheduleMixin
from muscle_mm.utils import register_all_modules

REPO = str(Path(__file__).resolve().parents[2])
DATA = osp.join(REPO, 'tests', 'data')
sys.path.insert(0, DATA)
from rank_probe import buffers_digest  # noqa: E402

CL_DEMO = osp.join(REPO, 'configs/muscle/demo/cl_r18_demo.py')
FT_DEMO = osp.join(REPO,
                   'configs/muscle/finetune/demo/pneumonia_r18_scratch_demo.py')
pytestmark = pytest.mark.slow
register_all_modules(init_default_scope=False)  # weights-only allow-list


def probed(config, tmp_path, name, hooks=(dict(type='RankProbeHook'), )):
    cfg = Config.fromfile(config)
    cfg.custom_imports = dict(imports=['rank_probe'],
                              allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + list(hooks)
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def run(cmd, cwd, port, returncode=0):
    env = dict(os.environ, PORT=str(port), CUDA_VISIBLE_DEVICES='')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO, DATA, env.get('PYTHONPATH', '')])
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    out = proc.stdout + proc.stderr
    if returncode == 0:
        assert proc.returncode == 0, out[-4000:]
    else:
        assert proc.returncode != 0, out[-4000:]
    return out


def dist_train(config, gpus, work_dir, cwd, port, *args):
    return run([
        'bash',
        osp.join(REPO, 'tools/dist_train.sh'), config,
        str(gpus), '--work-dir', str(work_dir), *args
    ], cwd, port)


def probes(work_dir, ranks=2):
    out = []
    for rank in range(ranks):
        with open(osp.join(work_dir, f'probe_rank{rank}.json')) as f:
            out.append(json.load(f))
    return out


@pytest.fixture
def demo_cwd(tmp_path, demo_data_root):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(
        demo_data_root, target_is_directory=True)
    return tmp_path


class Orders(CLScheduleMixin):
    """The round orders a one-process run with seed 0 takes."""

    def __init__(self, tasks):
        self.tasks, self.reshuffle, self.seed = list(tasks), True, 0


def test_cl_on_two_processes(demo_cwd):
    """Stage 2 on 2 processes with diff_rank_seed: one task order on every
    rank (the one-process run's), Eq. 1 as derived for the per-process
    round with the LR and its minimum scaled, one set of BN buffers at every
    validation, and a resume on 1 process refused."""
    config = probed(CL_DEMO, demo_cwd, 'cl')
    work = demo_cwd / 'cl'
    dist_train(config, 2, work, demo_cwd, 29541, '--auto-scale-lr',
               '--cfg-options', 'model.backbone.init_cfg=None',
               'randomness.diff_rank_seed=True')
    rank0, rank1 = probes(work)

    cfg = Config.fromfile(config)  # a dumped config sorts the task keys
    tasks = list(cfg.train_dataloader)
    expected = [
        Orders(tasks).round_order(r) for r in range(cfg.train_cfg.rounds)
        for _ in tasks
    ]
    assert rank0['orders'] == rank1['orders'] == expected

    ckpt = torch.load(work / 'epoch_8.pth', weights_only=True)
    geometry = ckpt['meta']['run_geometry']
    assert geometry['world_size'] == 2
    assert geometry['effective_batch'] == {
        t: 2 * b for t, b in geometry['batch_size'].items()}
    period = geometry['iters_per_round']
    assert period == sum(geometry['iters_per_epoch'].values())
    # the per-process iterations, by hand from the split files: drop_last
    # batches of ceil(n / 2) images on each rank
    for task, folder in dict(pneumonia='chest_xray', mura='MURA-v1.1',
                             lung='Lung Segmentation',
                             tbx='TBX11K').items():
        with open(demo_cwd / 'data' / 'demo' / folder / 'muscle_splits' /
                  'train.txt') as f:
            n = sum(1 for line in f if line.strip())
        assert geometry['iters_per_epoch'][task] == math.ceil(
            n / 2) // geometry['batch_size'][task], task
    # Eq. 1, T = one round on each process, eta_max = 0.01 x 2 processes
    eta_max = 2 * cfg.optim_wrapper.optimizer.lr
    eta_min = eta_max / 100
    assert len(rank0['lr']) == cfg.train_cfg.rounds * period
    for t, lr in enumerate(rank0['lr']):
        want = eta_min + 0.5 * (eta_max - eta_min) * (
            1 + math.cos(2 * math.pi * (t % period) / period))
        assert lr == pytest.approx(want, abs=1e-12), t
    assert rank0['lr'] == rank1['lr']
    # the wave bottoms out near the scaled minimum (T odd: not exactly on it)
    assert eta_min <= min(rank0['lr']) < 1.2 * eta_min
    # one set of BN statistics at every validation, equal to the saved one
    assert len(rank0['val_buffers']) == cfg.train_cfg.rounds
    assert rank0['val_buffers'] == rank1['val_buffers']
    # the exported backbone's statistics: pooled over the tasks
    bn = ckpt['meta']['backbone_bn']
    assert bn['geometry'] == 'plain' and set(
        bn['images_per_task']) == set(tasks)

    # resuming this checkpoint on one process stops, naming both geometries
    out = run([
        sys.executable,
        osp.join(REPO, 'tools/train.py'), config, '--work-dir',
        str(work), '--resume', '--auto-scale-lr', '--cfg-options',
        'model.backbone.init_cfg=None'
    ], demo_cwd, 29542, returncode=1)
    assert 'Cannot resume' in out
    assert 'it was trained at world size 2 (per process: ' in out
    assert 'this run has world size 1 (per process: ' in out
    assert 'bash tools/dist_train.sh CONFIG 2 --resume' in out


def test_finetune_on_two_processes_tests_as_tools_test(demo_cwd):
    """A 2-process fine-tune with --test-last: both ranks score with the
    same BN buffers, those of the checkpoint, and metrics.json equals
    tools/test.py on that checkpoint in one process."""
    config = probed(FT_DEMO, demo_cwd, 'ft')
    work = demo_cwd / 'ft'
    dist_train(config, 2, work, demo_cwd, 29543, '--test-last',
               '--test-out', str(work / 'metrics.json'), '--cfg-options',
               'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
               'default_hooks.checkpoint.interval=2')
    rank0, rank1 = probes(work)
    assert len(rank0['val_buffers']) == 2
    assert rank0['val_buffers'] == rank1['val_buffers']
    ckpt = torch.load(work / 'epoch_2.pth', weights_only=True)
    saved = buffers_digest(type('M', (), {
        'state_dict': lambda self: ckpt['state_dict']})())
    assert rank0['test_buffers'] == rank1['test_buffers'] == [saved]

    run([
        sys.executable,
        osp.join(REPO, 'tools/test.py'), config,
        str(work / 'epoch_2.pth'), '--work-dir',
        str(demo_cwd / 'test'), '--out',
        str(work / 'tools_test.json')
    ], demo_cwd, 29544)
    with open(work / 'metrics.json') as f:
        trained = json.load(f)
    with open(work / 'tools_test.json') as f:
        tested = json.load(f)
    assert trained.keys() == tested.keys()
    for key, value in tested.items():
        assert trained[key] == pytest.approx(value, abs=1e-6), key


def test_resume_with_the_configs_persistent_workers_is_exact(demo_cwd):
    """The demo CL config's own workers (2 a task, persistent, random
    flips), two classification tasks for two rounds: killed after 3
    task-iterates, the resumed run starts new workers for a task whose
    workers the uninterrupted run kept from round 1, and ends with the
    weights and BN buffers of the uninterrupted one."""
    options = ['--cfg-options', 'model.backbone.init_cfg=None',
               'train_cfg.tasks=[pneumonia,mura]']
    cfg = Config.fromfile(CL_DEMO)
    assert cfg.train_cfg.loader_overrides.persistent_workers
    assert cfg.train_cfg.loader_overrides.num_workers > 0
    train = osp.join(REPO, 'tools/train.py')
    # one config file for the three runs (a dumped config orders the tasks
    # by name, and the optimizer's state follows the parameters' order)
    config = probed(CL_DEMO, demo_cwd, 'stopped',
                    [dict(type='StopAfterEpochsHook', epochs=3)])
    full = demo_cwd / 'full'
    run([
        sys.executable, train, config, '--work-dir',
        str(full), *options, 'custom_hooks.1.epochs=0'
    ], demo_cwd, 29545)
    cut = demo_cwd / 'cut'
    run([sys.executable, train, config, '--work-dir', str(cut), *options],
        demo_cwd, 29546, returncode=1)
    assert (cut / 'epoch_3.pth').is_file()
    assert not (cut / 'epoch_4.pth').exists()
    run([
        sys.executable, train, config, '--work-dir',
        str(cut), '--resume', *options
    ], demo_cwd, 29547)
    want = torch.load(full / 'epoch_4.pth', weights_only=True)['state_dict']
    got = torch.load(cut / 'epoch_4.pth', weights_only=True)['state_dict']
    assert got.keys() == want.keys()
    differ = [k for k in want if not torch.equal(got[k], want[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    # the original config orders the model's tasks otherwise than the
    # dumped one the run used: its optimizer state would land on other
    # tensors, so the resume stops
    out = run([
        sys.executable, train, CL_DEMO, '--work-dir',
        str(cut), '--resume', *options
    ], demo_cwd, 29548, returncode=1)
    assert "Cannot resume" in out and 'lists dict keys by name' in out
