# Copyright (c) muscle_mm contributors. All rights reserved.
"""muscle_mm: MUSCLE pre-training for X-ray images as OpenMMLab plugins.

Importing the package is light (no torch, no OpenMMLab): ``muscle_mm.metainfo``
and ``muscle_mm.testing`` work before the stack is installed. The registries
(:mod:`muscle_mm.registry`) and :mod:`muscle_mm.utils` apply the compat fixes
of :mod:`muscle_mm.utils.compat` when they are first imported.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
