import os
import os.path as osp
import sys

import pytest

# The suite runs on the CPU, also where a GPU is visible: several tests
# compare tensors bit for bit with CPU ones, start gloo DDP processes or
# check CPU AMP. GPUs are hidden from torch here (and from the subprocesses
# the tests start) before anything initialises CUDA.
os.environ['CUDA_VISIBLE_DEVICES'] = ''
import torch  # noqa: E402

if torch.cuda.is_available():
    raise RuntimeError(
        'tests/conftest.py could not hide the GPUs (CUDA was initialised '
        'before it ran, e.g. by a pytest plugin); run the suite with '
        'CUDA_VISIBLE_DEVICES= set.')

# tests/data holds toy modules imported by test configs (custom_imports)
DATA_DIR = osp.join(osp.dirname(__file__), 'data')
if DATA_DIR not in sys.path:
    sys.path.insert(0, DATA_DIR)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory) -> str:
    """The nine demo datasets in their release layouts, with the paper's
    split files, made once per test session (link it as ``data/`` to run
    the paper-scale configs on it)."""
    import subprocess

    from muscle_mm.testing import generate_demo_data
    root = tmp_path_factory.mktemp('demo_data')
    generate_demo_data(str(root))
    subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools/dataset_converters/make_splits.py'),
        '--data-root',
        str(root)
    ],
                   check=True,
                   capture_output=True)
    return str(root)
