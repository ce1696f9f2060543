# Copyright (c) muscle_mm contributors. All rights reserved.
from .dist import setup_cpu_distributed
from .fileio import AtomicLocalBackend, atomic_write
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'setup_cpu_distributed', 'AtomicLocalBackend',
    'atomic_write'
]
