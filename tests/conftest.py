import os.path as osp
import sys

import pytest

# tests/data holds toy modules imported by test configs (custom_imports)
DATA_DIR = osp.join(osp.dirname(__file__), 'data')
if DATA_DIR not in sys.path:
    sys.path.insert(0, DATA_DIR)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT
