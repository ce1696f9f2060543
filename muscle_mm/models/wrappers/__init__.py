# Copyright (c) muscle_mm contributors. All rights reserved.
from .cpu_ddp import CPUDistributedDataParallel

__all__ = ['CPUDistributedDataParallel']
