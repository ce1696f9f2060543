# Copyright (c) muscle_mm contributors. All rights reserved.
"""muscle_mm: MUSCLE pre-training for X-ray images as OpenMMLab plugins."""
from .utils.compat import apply_compat_fixes
from .version import __version__, version_info

# Runs once on import, before any checkpoint is loaded or pipeline built.
apply_compat_fixes()

__all__ = ['__version__', 'version_info']
