# Copyright (c) muscle_mm contributors. All rights reserved.
from .compat import apply_compat_fixes
from .dist import setup_cpu_distributed
from .fileio import AtomicLocalBackend, atomic_write
from .mim import register_mim_package
from .setup_env import register_all_modules

# Once, before any checkpoint is loaded or pipeline built: every module that
# loads one imports muscle_mm.utils or the registries (which import it).
apply_compat_fixes()
# configs elsewhere may inherit ours as `muscle_mm::<path under configs/>`
register_mim_package()

__all__ = [
    'register_all_modules', 'setup_cpu_distributed', 'AtomicLocalBackend',
    'atomic_write', 'register_mim_package'
]
