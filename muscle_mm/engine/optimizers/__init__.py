# Copyright (c) muscle_mm contributors. All rights reserved.
from .cpu_amp_optimizer_wrapper import CPUAmpOptimWrapper

__all__ = ['CPUAmpOptimWrapper']
