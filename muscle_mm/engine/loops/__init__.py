# Copyright (c) muscle_mm contributors. All rights reserved.
from .multitask_cl_loop import MultiTaskCLLoop
from .multitask_val_loop import MultiTaskValLoop

__all__ = ['MultiTaskCLLoop', 'MultiTaskValLoop']
