"""``tools/train.py`` and ``tools/dist_train.sh``: weights-only checkpoints,
exact resume (also past a damaged checkpoint), CPU distributed training."""
import os
import os.path as osp
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import muscle_mm.utils  # noqa: F401  (applies the compat fixes)


def _train(cfg_path, work_dir, *extra, env=None, returncode=0):
    cmd = [
        sys.executable,
        osp.join('tools', 'train.py'), cfg_path, '--work-dir',
        str(work_dir), *extra
    ]
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = osp.join(root, 'tests', 'data') + os.pathsep + \
        env.get('PYTHONPATH', '')
    proc = subprocess.run(
        cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == returncode, \
        proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


TOY_CFG = osp.join('tests', 'data', 'toy_config.py')


def test_checkpoint_loads_weights_only_and_resume_is_exact(tmp_path):
    # uninterrupted: 2 epochs
    _train(TOY_CFG, tmp_path / 'full')
    # killed after epoch 1, then `--resume` (auto) to epoch 2
    _train(
        TOY_CFG,
        tmp_path / 'part',
        env=dict(TOY_INTERRUPT_AFTER_EPOCH='1'),
        returncode=3)
    assert not (tmp_path / 'part' / 'weights_rank0.pth').exists()
    ckpt = torch.load(
        tmp_path / 'part' / 'epoch_1.pth', map_location='cpu',
        weights_only=True)  # the torch>=2.6 default; needs our allow-list
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    _train(TOY_CFG, tmp_path / 'part', '--resume')
    full = torch.load(tmp_path / 'full' / 'weights_rank0.pth')
    resumed = torch.load(tmp_path / 'part' / 'weights_rank0.pth')
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=0)


def test_resume_skips_a_truncated_last_checkpoint(tmp_path):
    """``--resume`` with a damaged newest checkpoint: a warning names it and
    training continues from the newest intact one, bit-exact; an explicit
    ``--resume PATH`` to it stops, naming the file."""
    _train(TOY_CFG, tmp_path / 'full')
    part = tmp_path / 'part'
    _train(
        TOY_CFG, part, env=dict(TOY_INTERRUPT_AFTER_EPOCH='1'), returncode=3)
    # epoch 2's checkpoint cut short (a full disk, a copy killed halfway)
    intact = (part / 'epoch_1.pth').read_bytes()
    broken = part / 'epoch_2.pth'
    broken.write_bytes(intact[:len(intact) // 2])
    os.utime(broken, (time.time() + 5, time.time() + 5))
    (part / 'last_checkpoint').write_text(str(broken))

    proc = _train(TOY_CFG, part, '--resume', str(broken), returncode=1)
    assert f'--resume {broken}: cannot resume from this file' in proc.stderr
    assert 'not a complete torch checkpoint' in proc.stderr

    proc = _train(TOY_CFG, part, '--resume')
    assert f'Cannot resume from {broken}' in proc.stdout + proc.stderr
    full = torch.load(tmp_path / 'full' / 'weights_rank0.pth')
    resumed = torch.load(part / 'weights_rank0.pth')
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=0)


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PORT='29517', CUDA_VISIBLE_DEVICES='')
    env['PYTHONPATH'] = osp.join(root, 'tests', 'data') + os.pathsep + \
        env.get('PYTHONPATH', '')
    proc = subprocess.run([
        'bash',
        osp.join('tools', 'dist_train.sh'), TOY_CFG, '2', '--work-dir',
        str(tmp_path)
    ],
                          cwd=root,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    w0 = torch.load(tmp_path / 'weights_rank0.pth')
    w1 = torch.load(tmp_path / 'weights_rank1.pth')
    # parameters are all-reduced by DDP; the BN running statistics, which
    # each rank keeps (broadcast_buffers=False), are averaged over the ranks
    # by BufferSyncHook after every epoch
    for k in ['bn.weight', 'bn.bias', 'fc.weight', 'fc.bias',
              'bn.running_mean', 'bn.running_var']:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)
    # both ranks trained (weights moved away from a fresh model's)
    init = torch.nn.Linear(8, 1)
    assert not torch.allclose(w0['fc.weight'], init.weight)
    # each rank saw half of the 64 samples: 8 iterations of batch 4 per epoch
    assert 'Epoch(train) [1][8/8]' in proc.stdout + proc.stderr


def test_tensorboard_switch_writes_event_files(tmp_path):
    """``--tensorboard`` adds mmengine's TensorboardVisBackend: the losses
    land in an events file under ``<work_dir>/<timestamp>/vis_data/``."""
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    _train(TOY_CFG, tmp_path, '--tensorboard')
    events = list(tmp_path.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1, list(tmp_path.rglob('*'))
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    assert 'loss' in acc.Tags()['scalars'], acc.Tags()


def test_tensorboard_switch_without_the_package(monkeypatch):
    """Without the ``tensorboard`` package, ``--tensorboard`` stops before
    training, saying what to install."""
    import importlib.util
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location('train_tool',
                                                  root / 'tools' / 'train.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from mmengine.config import Config
    cfg = Config(dict(visualizer=dict(type='Visualizer')))
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args sets it
    args = tool.parse_args(['cfg.py', '--tensorboard'])
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    with pytest.raises(SystemExit, match='pip install tensorboard'):
        tool.merge_args(cfg, args)
    monkeypatch.delitem(sys.modules, 'torch.utils.tensorboard')
    pytest.importorskip('tensorboard')
    tool.merge_args(cfg, args)
    assert [b['type'] for b in cfg.visualizer.vis_backends
            ] == ['TensorboardVisBackend']


def test_study_passes_tensorboard_to_every_run(tmp_path):
    """``tools/run_muscle.py --tensorboard`` -> ``StudySettings`` -> each
    run's ``tools/train.py --tensorboard``."""
    from muscle_mm.apis import MuscleStudy, StudySettings, get_config_path
    for on in (False, True):
        study = MuscleStudy(
            StudySettings(work_dir=str(tmp_path), tensorboard=on),
            log=lambda m: 0)
        cmd = study.train_command(
            get_config_path('muscle/cl_r18.py'), str(tmp_path))
        assert ('--tensorboard' in cmd) is on
