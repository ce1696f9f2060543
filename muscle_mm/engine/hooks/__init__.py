# Copyright (c) muscle_mm contributors. All rights reserved.
from .l2sp_hook import L2SPHook

__all__ = ['L2SPHook']
