# Copyright (c) muscle_mm contributors. All rights reserved.
from .accuracy_matrix_hook import AccuracyMatrixHook
from .cl_matrix import AccuracyMatrix
from .l2sp_hook import L2SPHook

__all__ = ['AccuracyMatrix', 'AccuracyMatrixHook', 'L2SPHook']
