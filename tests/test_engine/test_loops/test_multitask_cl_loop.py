# Copyright (c) muscle_mm contributors. All rights reserved.
"""MultiTaskCLLoop (MUSCLE Sec. 2.2) on tiny in-test datasets
(``tests/data/cl_toys.py``), including a third party's fifth task."""
import json
import os
import os.path as osp
import subprocess

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from cl_toys import final_weights, make_cfg  # noqa: F401

# ------------------------------------------------------------------- tests
def test_unknown_task_fails_at_build(repo_root, tmp_path):
    cfg = make_cfg(repo_root, tmp_path, tasks=('cls', ))
    cfg.train_cfg.tasks = ['cls', 'pneumothorax']
    runner = Runner.from_cfg(cfg)
    with pytest.raises(KeyError, match="unknown task.*'pneumothorax'"):
        runner.train()


def test_tasks_default_to_the_dataloaders_in_order(repo_root, tmp_path):
    """The stage-2 configs name the tasks once, in their dataset config
    (``_base_/datasets/xray4.py``): the loop takes its dataloaders' keys."""
    cfg = make_cfg(repo_root, tmp_path, tasks=('seg', 'cls'))
    del cfg.train_cfg['tasks']
    runner = Runner.from_cfg(cfg)
    loop = runner.build_train_loop(cfg.train_cfg)
    assert loop.tasks == ['seg', 'cls']
    assert Config.fromfile(
        osp.join(repo_root, 'configs/muscle/cl_r18.py')).train_dataloader.keys(
        ) == {'pneumonia', 'mura', 'lung', 'tbx'}


def test_task_without_dataloader_fails_at_build(repo_root, tmp_path):
    cfg = make_cfg(repo_root, tmp_path, tasks=('cls', 'seg'))
    del cfg.train_dataloader['seg']
    runner = Runner.from_cfg(cfg)
    with pytest.raises(KeyError, match=r"train_dataloader.*\['seg'\]"):
        runner.train()


@pytest.mark.slow
def test_third_party_task_and_accuracy_matrix(repo_root, tmp_path):
    """A fifth task defined in this file only trains and validates in the
    loop; the accuracy matrix and forgetting come out as JSON and PNG."""
    tasks = ('cls', 'seg', 'boneage')
    cfg = make_cfg(
        repo_root,
        tmp_path,
        tasks=tasks,
        rounds=2,
        validate=True,
        matrix=dict(
            score_keys=dict(cls='accuracy/top1', seg='mIoU', boneage='mae'),
            lower_is_better=['boneage']))
    runner = Runner.from_cfg(cfg)
    runner.train()
    loop = runner.train_loop

    assert loop.epoch == loop.max_epochs == 6
    assert loop.iter == loop.max_iters == 2 * 3 * 1
    # reshuffled per round, from the seed: each round a permutation
    orders = [loop.round_order(r) for r in range(10)]
    assert all(sorted(o) == sorted(tasks) for o in orders)
    assert len({tuple(o) for o in orders}) > 1
    assert orders == [loop.round_order(r) for r in range(10)]
    for i in range(1, 7):
        assert osp.isfile(osp.join(tmp_path, f'epoch_{i}.pth'))

    with open(osp.join(tmp_path, 'cl_accuracy_matrix.json')) as f:
        result = json.load(f)
    assert osp.getsize(osp.join(tmp_path, 'cl_accuracy_matrix.png')) > 0
    assert result['tasks'] == list(tasks)
    expected_cols = [
        f'r{r + 1}:{t}' for r in range(2) for t in loop.round_order(r)
    ]
    assert result['columns'] == expected_cols
    mat = np.array(result['matrix'], dtype=float)
    assert mat.shape == (3, 6) and not np.isnan(mat).any()
    assert ((mat[:2] >= 0) & (mat[:2] <= 100)).all()
    # forgetting by hand: best earlier minus last (flipped for an error)
    for i, t in enumerate(tasks):
        if t == 'boneage':
            expected = mat[i, -1] - mat[i, :-1].min()
        else:
            expected = mat[i, :-1].max() - mat[i, -1]
        assert result['forgetting'][t] == pytest.approx(expected)
    # the last validation is also in the message hub, as logged metrics
    assert runner.message_hub.get_info('cl_loop')['round'] == 2
    # log lines carry the active task's losses only, not stale ones
    last = runner.message_hub.get_info('cl_task')
    tag, _ = runner.log_processor.get_log_after_iter(runner, 0, 'train')
    assert {k.split('.')[0] for k in tag if '.' in k} == {last}


@pytest.mark.slow
def test_resume_mid_round_equals_uninterrupted_run(repo_root, tmp_path):
    """Interrupted after task-iterate 3 (round 2, first task), resumed from
    its checkpoint, the run ends with the weights of an uninterrupted one."""
    full = Runner.from_cfg(
        make_cfg(repo_root, tmp_path / 'full', validate=True))
    full.train()
    expected = final_weights(full)
    expected_state = full.message_hub.get_info('cl_loop')

    cfg = make_cfg(repo_root, tmp_path / 'cut', validate=True)
    cfg.custom_hooks = [dict(type='InterruptAfterIterate', iterates=3)]
    with pytest.raises(KeyboardInterrupt):
        Runner.from_cfg(cfg).train()
    ckpt = osp.join(tmp_path, 'cut', 'epoch_3.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    saved = state['message_hub']['runtime_info']['cl_loop']
    assert saved['round'] == 1 and saved['position'] == 1
    assert saved['order'] == full.train_loop.round_order(1)

    cfg = make_cfg(repo_root, tmp_path / 'cut', validate=True)
    cfg.resume, cfg.load_from = True, ckpt
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.train_loop.epoch == 4 and resumed.train_loop.iter == 4
    assert resumed.message_hub.get_info('cl_loop') == expected_state
    got = final_weights(resumed)
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(got[k], v), k
    # the accuracy matrix carried over the interruption, too
    with open(tmp_path / 'full' / 'cl_accuracy_matrix.json') as f:
        expected_matrix = json.load(f)
    with open(tmp_path / 'cut' / 'cl_accuracy_matrix.json') as f:
        assert json.load(f) == expected_matrix
    assert len(expected_matrix['columns']) == 4
    # and a wrong resume is not silently equal: weights did move
    assert not torch.equal(
        got['backbone.conv1.weight'],
        torch.load(ckpt,
                   weights_only=True)['state_dict']['backbone.conv1.weight'])


def test_fixed_order_without_reshuffle(repo_root, tmp_path):
    cfg = make_cfg(repo_root, tmp_path, tasks=('seg', 'cls'), reshuffle=False)
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    loop = runner.train_loop
    assert [loop.round_order(r) for r in range(3)] == [['seg', 'cls']] * 3
    assert loop.max_epochs == 4 and loop.max_iters == 4
    assert loop.active_task == 'seg' and loop.dataloader is \
        loop.dataloaders['seg']


def test_task_entries_from_config_files(tmp_path):
    from muscle_mm.engine.loops.utils import task_entry
    path = tmp_path / 'ds.py'
    path.write_text("train_dataloader = dict(batch_size=3)\n")
    assert task_entry(str(path), 'train_dataloader', 'x').batch_size == 3
    with pytest.raises(KeyError, match='task "x".*no `val_evaluator`'):
        task_entry(str(path), 'val_evaluator', 'x')
    with pytest.raises(FileNotFoundError, match='task "y"'):
        task_entry(str(tmp_path / 'nope.py'), 'train_dataloader', 'y')


@pytest.mark.parametrize('name', [
    'cl_r18', 'cl_r50', 'muscle_minus_r18', 'muscle_minus_r50',
    'demo/cl_r18_demo', 'demo/muscle_minus_r18_demo'
])
def test_cl_configs(repo_root, name):
    cfg = Config.fromfile(osp.join(repo_root, 'configs/muscle', f'{name}.py'))
    loop = cfg.train_cfg
    assert loop.type == 'MultiTaskCLLoop'
    # the loop's tasks: those of the dataset config, in order
    assert 'tasks' not in loop
    tasks = ['pneumonia', 'mura', 'lung', 'tbx']
    assert loop.rounds == (2 if 'demo' in name else 10)
    assert loop.epochs_per_task == 1
    assert cfg.model_wrapper_cfg.find_unused_parameters
    for entries in (cfg.model.tasks, cfg.train_dataloader, cfg.val_dataloader,
                    cfg.val_evaluator):
        assert list(entries) == tasks
        assert all(osp.isfile(p) for p in entries.values())
    # observed by the hooks of configs/_base_/cl_runtime.py, MUSCLE-- too
    matrix = cfg.default_hooks.accuracy_matrix
    assert matrix.type == 'AccuracyMatrixHook'
    assert list(matrix.score_keys) == tasks
    assert cfg.log_processor.type == 'MultiTaskLogProcessor'
    minus = 'minus' in name
    assert loop.reshuffle is not minus
    assert (cfg.param_scheduler is None) is minus
    assert bool(cfg.custom_hooks) is not minus
    if not minus:
        assert cfg.param_scheduler.type == 'CyclicCosineLR'
        assert cfg.param_scheduler.period == 'round'  # derived, not counted
        assert cfg.custom_hooks[0].type == 'L2SPHook'
    else:  # the same optimizer: its weight decay is Eq. 2's ridge term
        muscle = Config.fromfile(
            osp.join(repo_root, 'configs/muscle',
                     f"{name.replace('muscle_minus', 'cl')}.py"))
        assert cfg.optim_wrapper == muscle.optim_wrapper
    assert cfg.model.backbone.depth == (50 if 'r50' in name else 18)


@pytest.mark.slow
def test_ddp_two_cpu_processes(repo_root, tmp_path):
    """Under DDP (gloo, 2 processes) the alternating task heads train with
    find_unused_parameters (without it DDP fails on the inactive heads), and
    Eq. 1's period is one round of iterations *per process*."""
    cfg = make_cfg(repo_root, tmp_path, tasks=('cls', 'seg'), rounds=1)
    cfg.optim_wrapper.optimizer.lr = 0.01  # for one process, batch 2
    cfg.param_scheduler = dict(
        type='CyclicCosineLR', by_epoch=False, period='round', eta_min=0.001)
    cfg.runner_type = 'MultiTaskRunner'
    cfg.auto_scale_lr = dict(
        enable=False, base_batch_size=dict(cls=2, seg=2))
    cfg.model_wrapper_cfg = dict(
        type='muscle_mm.CPUDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=True)
    for loader in cfg.train_dataloader.values():  # 2 images per rank
        loader.dataset.n = 4
    # the workers import the toy datasets
    cfg.custom_imports = dict(imports=['cl_toys'])
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg_file = str(tmp_path / 'ddp_cfg.py')
    cfg.dump(cfg_file)
    env = dict(os.environ, PORT='29533', CUDA_VISIBLE_DEVICES='')
    env['PYTHONPATH'] = osp.join(repo_root, 'tests', 'data') + os.pathsep + \
        env.get('PYTHONPATH', '')
    proc = subprocess.run([
        'bash',
        osp.join('tools', 'dist_train.sh'), cfg_file, '2', '--work-dir',
        str(tmp_path), '--auto-scale-lr'
    ],
                          cwd=repo_root,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)
    assert ckpt['message_hub']['runtime_info']['cl_loop']['round'] == 1
    assert any(
        k.startswith('tasks.seg.decode_head') for k in ckpt['state_dict'])
    # 4 images per task over 2 processes at batch 2: 1 iteration per task per
    # process, so a round is T = 2 iterations and the second iteration runs
    # at the wave's minimum (T/2); a period counted over both processes
    # (T = 4) would put it half way, at 0.0055
    assert ckpt['param_schedulers'][0]['last_step'] == 1
    assert ckpt['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.001)
    # --auto-scale-lr: 2 processes x batch 2 over the base batch of 2
    assert ckpt['optimizer']['param_groups'][0]['initial_lr'] == \
        pytest.approx(0.02)
