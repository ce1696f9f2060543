# Copyright (c) muscle_mm contributors. All rights reserved.
"""Find ``configs/`` and ``tools/`` through the package, not the cwd.

A checkout (an editable install, or ``PYTHONPATH`` pointing at it) has them
beside the package; an installed package has the copies that ``setup.py``
puts in ``muscle_mm/.mim``, as mmpretrain and mmdet do for ``mim``. The
checkout comes first, so its configs are read as edited.
"""
import os.path as osp
from typing import List

#: The ``muscle_mm`` package folder.
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The folder ``muscle_mm`` is imported from (the checkout, or
#: site-packages); children put it first on ``PYTHONPATH``.
IMPORT_ROOT = osp.dirname(PACKAGE_DIR)


def resource_roots() -> List[str]:
    """Folders searched for ``configs/`` and ``tools/``, in order."""
    roots = []
    if osp.isfile(osp.join(IMPORT_ROOT, 'setup.py')):
        roots.append(IMPORT_ROOT)  # a checkout
    roots.append(osp.join(PACKAGE_DIR, '.mim'))  # an installed package
    return roots


def _find(kind: str, rel: str) -> str:
    tried = [osp.join(root, kind, rel) for root in resource_roots()]
    for path in tried:
        if osp.exists(path):
            return path
    raise FileNotFoundError(
        f'{kind}/{rel} not found in muscle_mm; tried {", ".join(tried)}. '
        f'Run from a checkout of muscle_mm, or reinstall it (pip install -e . '
        f'links {kind}/ into muscle_mm/.mim) if the file should be there.')


def get_config_path(rel: str) -> str:
    """Path of ``configs/<rel>``, e.g. ``get_config_path('muscle/cl_r18.py')``.

    Raises:
        FileNotFoundError: naming the paths tried, when it is in none.
    """
    return _find('configs', rel)


def get_tool_path(rel: str) -> str:
    """Path of ``tools/<rel>``, e.g. ``get_tool_path('train.py')``."""
    return _find('tools', rel)
