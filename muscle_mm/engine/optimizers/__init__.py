# Copyright (c) muscle_mm contributors. All rights reserved.
from .amp import enable_amp
from .cpu_amp_optimizer_wrapper import CPUAmpOptimWrapper

__all__ = ['CPUAmpOptimWrapper', 'enable_amp']
