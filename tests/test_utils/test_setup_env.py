"""The package foundation: the registry scope, compat fixes (numpy 2, torch
weights-only loading), the optimised mmcv build, one top-level package."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

# importing muscle_mm.utils applies the compat fixes
from muscle_mm.utils import register_all_modules


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


def test_the_allow_list_comes_with_muscle_mm_utils_not_the_package(
        repo_root):
    """As README says: ``import muscle_mm`` stays light and registers
    nothing; ``import muscle_mm.utils`` allow-lists mmengine's types."""
    script = ('import torch; from mmengine.logging import HistoryBuffer\n'
              'listed = lambda: HistoryBuffer in '
              'torch.serialization.get_safe_globals()\n'
              'import muscle_mm; print(listed())\n'
              'import muscle_mm.utils; print(listed())\n')
    out = subprocess.run([sys.executable, '-c', script],
                         cwd=repo_root,
                         capture_output=True,
                         text=True,
                         check=True).stdout.split()
    assert out == ['False', 'True']
    assert 'A plain `import muscle_mm` does not register the allow-list' in \
        open(osp.join(repo_root, 'README.md')).read()
