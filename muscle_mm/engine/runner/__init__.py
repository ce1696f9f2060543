# Copyright (c) muscle_mm contributors. All rights reserved.
from .lr_scaling import lr_scaling
from .multitask_runner import MultiTaskRunner

__all__ = ['MultiTaskRunner', 'lr_scaling']
