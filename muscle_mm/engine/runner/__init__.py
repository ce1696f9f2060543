# Copyright (c) muscle_mm contributors. All rights reserved.
from .lr_scaling import lr_scaling
from .multitask_log_processor import MultiTaskLogProcessor
from .multitask_runner import MultiTaskRunner

__all__ = ['MultiTaskLogProcessor', 'MultiTaskRunner', 'lr_scaling']
