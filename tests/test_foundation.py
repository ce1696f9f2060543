"""The package foundation: registries, compat fixes, atomic checkpoints,
resume, and CPU distributed training through tools/dist_train.sh."""
import os
import os.path as osp
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

import muscle_mm  # noqa: F401  (applies the compat fixes)
from muscle_mm.utils import atomic_write, register_all_modules


def test_register_all_modules_sets_the_package_scope():
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'muscle_mm'
    from muscle_mm.registry import MODEL_WRAPPERS, MODELS
    assert MODELS.scope == 'muscle_mm'
    # our modules and the other libraries' (by prefix) resolve from it
    assert MODEL_WRAPPERS.get('CPUDistributedDataParallel') is not None
    assert MODELS.get('mmdet.FasterRCNN').__name__ == 'FasterRCNN'
    assert MODELS.get('mmseg.EncoderDecoder').__name__ == 'EncoderDecoder'
    assert MODELS.get('mmpretrain.MoCo').__name__ == 'MoCo'


@pytest.mark.parametrize('hue', [-0.5, -0.1, 0.0, 0.2, 0.5])
def test_adjust_hue_numpy2_negative_hue(hue):
    import mmcv
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = mmcv.adjust_hue(img, hue)  # OverflowError before the fix
    # hand computation: rotate H (full range 0..255) by int(hue*255) mod 256
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(hue * 255)) % 256
    expected = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)
    np.testing.assert_array_equal(out, expected)
    out_pil = mmcv.adjust_hue(img, hue, backend='pillow')
    assert out_pil.shape == img.shape and out_pil.dtype == np.uint8


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write(b'complete', target)

    def interrupted(fd):  # the process dies after writing, before renaming
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'fsync', interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(b'partial', target)
    assert target.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temp file left


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    """Checkpoints written through the config's backend get 0666 less the
    umask, as a plain ``open`` gives (``mkstemp`` made every file 0600);
    a replaced file keeps its mode."""
    from mmengine.fileio import get_file_backend
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend='muscle_atomic_local'))
    old = os.umask(umask)
    try:
        backend.put(b'weights', tmp_path / 'epoch_1.pth')
        backend.put_text('epoch_1.pth', tmp_path / 'last_checkpoint')
        with open(tmp_path / 'plain', 'wb'):
            pass
    finally:
        os.umask(old)
    mode = 0o666 & ~umask
    for name in ('epoch_1.pth', 'last_checkpoint', 'plain'):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    os.chmod(tmp_path / 'epoch_1.pth', 0o640)
    atomic_write(b'newer', tmp_path / 'epoch_1.pth')
    assert stat.S_IMODE(os.stat(tmp_path / 'epoch_1.pth').st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == [
        'epoch_1.pth', 'last_checkpoint', 'plain'
    ]


def _train(cfg_path, work_dir, *extra, env=None, returncode=0):
    cmd = [
        sys.executable,
        osp.join('tools', 'train.py'), cfg_path, '--work-dir',
        str(work_dir), *extra
    ]
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
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


def test_empty_arrays_load_weights_only(tmp_path):
    """A checkpoint whose message hub holds an empty ``HistoryBuffer`` and an
    empty array resumes: numpy pickles their data as ``bytes()``, which
    weights-only loading refused ("GLOBAL bytes was not an allowed global");
    ``bytes`` with an argument (an allocation of any size) stays refused."""
    import io
    import pickle

    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

    hub = MessageHub(
        f'empty_arrays_{id(tmp_path)}',
        log_scalars={'train/loss': HistoryBuffer()},
        runtime_info={'empty': np.zeros((0, 3), dtype=np.int64)},
        resumed_keys={
            'train/loss': True,
            'empty': True
        })
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(
        dict(
            meta=dict(epoch=1),
            state_dict=dict(w=torch.zeros(2)),
            message_hub=hub.state_dict()),
        path,
        backend_args=dict(backend='muscle_atomic_local'))
    # the runner's resume: mmengine's loader (torch.load, weights_only)
    ckpt = _load_checkpoint(path, map_location='cpu')
    resumed = MessageHub.get_instance(f'resumed_{id(tmp_path)}')
    resumed.load_state_dict(ckpt['message_hub'])
    assert resumed.get_scalar('train/loss').data[0].shape == (0, )
    assert resumed.get_info('empty').shape == (0, 3)

    class Allocate:

        def __reduce__(self):
            return bytes, (1 << 20, )

    buffer = io.BytesIO()
    torch.save(dict(data=Allocate()), buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='without arguments'):
        torch.load(buffer, weights_only=True)


@pytest.mark.parametrize('pointer', ['', 'moved', 'dangling', None])
def test_find_resumable_checkpoint_pointer_cases(tmp_path, pointer):
    """An empty, moved or dangling ``last_checkpoint`` (or none) still finds
    the newest intact checkpoint; an empty work dir finds none."""
    from muscle_mm.utils.resume import find_resumable_checkpoint
    assert find_resumable_checkpoint(str(tmp_path)) is None
    for i, name in enumerate(['epoch_1.pth', 'epoch_2.pth']):
        torch.save({'epoch': i}, tmp_path / name)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / 'epoch_3.pth').write_bytes(b'')  # newest, empty
    target = {
        '': '',
        'moved': '/elsewhere/run/epoch_1.pth',
        'dangling': str(tmp_path / 'epoch_9.pth'),
        None: None
    }[pointer]
    if target is not None:
        (tmp_path / 'last_checkpoint').write_text(target)
    expected = 'epoch_1.pth' if pointer == 'moved' else 'epoch_2.pth'
    assert find_resumable_checkpoint(str(tmp_path)) == str(tmp_path /
                                                           expected)


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tmp_path):
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
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
    # parameters are all-reduced; BN running stats stay per rank as in
    # mmengine's default DDP (broadcast_buffers=False) unless SyncBN is used
    for k in ['bn.weight', 'bn.bias', 'fc.weight', 'fc.bias']:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)
    assert not torch.equal(w0['bn.running_mean'], w1['bn.running_mean'])
    # both ranks trained (weights moved away from a fresh model's)
    init = torch.nn.Linear(8, 1)
    assert not torch.allclose(w0['fc.weight'], init.weight)
    # each rank saw half of the 64 samples: 8 iterations of batch 4 per epoch
    assert 'Epoch(train) [1][8/8]' in proc.stdout + proc.stderr


def test_mmcv_ops_are_built_optimised(repo_root):
    """setuptools replaces Python's compile flags (-O3 among them) with
    $CFLAGS, so the build must pass an optimisation level itself, and the
    cache key must not reuse a wheel of the old -O0 build."""
    import re
    import sysconfig
    flags = subprocess.run(
        ['bash', 'tools/misc/build_mmcv_wheel.sh', '--print-flags'],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True).stdout.split()
    assert [f for f in flags if re.fullmatch(r'-O[0-3s]', f)][-1] == '-O3'
    assert set(sysconfig.get_config_var('CFLAGS').split()) <= set(flags)
    setup_env = open(osp.join(repo_root, 'tools/setup_env.sh')).read()
    assert "+ '-opt')" in setup_env  # the cache key of optimised builds
    assert 'CFLAGS=-g0' not in setup_env


def test_the_package_is_the_only_top_level_module(repo_root):
    """The scope is the package (as mmpretrain, mmseg, mmdet): nothing else
    is installed at the top level (``muscle`` is another PyPI package)."""
    from setuptools import find_packages
    packages = find_packages(repo_root, exclude=('configs', 'tools', 'tests'))
    assert {p.split('.')[0] for p in packages} == {'muscle_mm'}
