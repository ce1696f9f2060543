# Copyright (c) muscle_mm contributors. All rights reserved.
from .conv_geometry import conv_geometry, geometry_diff, switched_geometry
from .multitask_model import MultiTaskModel, build_task_model

__all__ = [
    'MultiTaskModel', 'build_task_model', 'conv_geometry', 'geometry_diff',
    'switched_geometry'
]
