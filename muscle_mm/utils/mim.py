# Copyright (c) muscle_mm contributors. All rights reserved.
"""Let configs in other repositories inherit ours as ``muscle_mm::<rel>``.

mmengine reads ``_base_ = ['mmdet::faster_rcnn/...']`` as
``get_installed_path(<package>)/.mim/configs/<rel>`` after looking the
module up in its ``MODULE2PACKAGE`` table (``mmengine.config.utils``). Two
things make that work for ``muscle_mm``, applied once when
:mod:`muscle_mm.utils` is imported:

* ``muscle_mm`` is added to ``MODULE2PACKAGE`` (mmengine lists only the
  OpenMMLab family there);
* the package folder is the one of the ``muscle_mm`` actually imported.
  mmengine takes the installed distribution's location, which for an
  editable install by pip >= 21.3 (PEP 660) is ``site-packages`` (no
  ``muscle_mm/`` there) and which would point past a checkout on
  ``PYTHONPATH``.

``setup.py`` puts ``configs/``, ``tools/`` and ``model-index.yml`` into
``muscle_mm/.mim`` (links for ``pip install -e .``, copies in a wheel); a
checkout imported through ``PYTHONPATH`` alone gets the same links here.
"""
import functools
import os
import os.path as osp
from typing import Callable

PACKAGE = 'muscle_mm'
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIM_DIR = osp.join(PACKAGE_DIR, '.mim')
#: what mmengine reads under ``.mim``: ``model-index.yml`` first (short
#: config names), then ``configs/<rel>``
MIM_ENTRIES = ('configs', 'tools', 'model-index.yml')


def _link_checkout() -> None:
    """In a checkout, link what ``pip install -e .`` would have linked."""
    checkout = osp.dirname(PACKAGE_DIR)
    if not osp.isfile(osp.join(checkout, 'setup.py')):
        return
    for name in MIM_ENTRIES:
        target = osp.join(MIM_DIR, name)
        if osp.exists(target) or not osp.exists(osp.join(checkout, name)):
            continue
        try:
            os.makedirs(MIM_DIR, exist_ok=True)
            if osp.islink(target):  # a dangling link
                os.remove(target)
            os.symlink(osp.join('..', '..', name), target)
        except OSError:  # read-only checkout: reported by the caller
            return


def mim_package_dir() -> str:
    """The imported ``muscle_mm`` folder, checked to hold ``.mim``.

    Raises:
        FileNotFoundError: naming what is missing and how to get it.
    """
    _link_checkout()
    missing = [
        n for n in ('configs', 'model-index.yml')
        if not osp.exists(osp.join(MIM_DIR, n))
    ]
    if missing:
        raise FileNotFoundError(
            f'muscle_mm:: configs are read from {MIM_DIR}, which lacks '
            f'{missing}. Reinstall muscle_mm (pip install . copies configs/ '
            'and model-index.yml there, pip install -e . links them).')
    return PACKAGE_DIR


def _for_muscle_mm(get_installed_path: Callable) -> Callable:

    @functools.wraps(get_installed_path)
    def wrapper(package: str) -> str:
        if package == PACKAGE:
            return mim_package_dir()
        return get_installed_path(package)

    wrapper.muscle_mm_mim = True
    return wrapper


def register_mim_package() -> None:
    """Make ``muscle_mm::`` resolvable by mmengine's ``Config`` and
    ``mmengine.hub.get_config``. Idempotent."""
    import sys

    import mmengine.config.config as config_module
    import mmengine.utils as utils_module
    from mmengine.config.utils import MODULE2PACKAGE

    MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    # where the name is looked up: Config's module, and mmengine.utils for
    # what imports it later (mmengine.hub, not imported here: it pulls in
    # the runner)
    hub_module = sys.modules.get('mmengine.hub.hub')
    for module in filter(None, (config_module, utils_module, hub_module)):
        original = module.get_installed_path
        if not getattr(original, 'muscle_mm_mim', False):
            module.get_installed_path = _for_muscle_mm(original)
