# Copyright (c) muscle_mm contributors. All rights reserved.
from .accuracy_matrix_hook import AccuracyMatrixHook
from .augmentation_seed_hook import AugmentationSeedHook
from .backbone_bn_hook import BackboneBNHook
from .buffer_sync_hook import BufferSyncHook
from .cl_matrix import AccuracyMatrix
from .l2sp_hook import L2SPHook
from .run_geometry_hook import RunGeometryHook

__all__ = [
    'AccuracyMatrix', 'AccuracyMatrixHook', 'AugmentationSeedHook',
    'BackboneBNHook', 'BufferSyncHook', 'L2SPHook', 'RunGeometryHook'
]
