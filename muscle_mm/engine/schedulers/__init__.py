# Copyright (c) muscle_mm contributors. All rights reserved.
from .cyclic_cosine_lr import CyclicCosineLR, CyclicCosineParamScheduler

__all__ = ['CyclicCosineLR', 'CyclicCosineParamScheduler']
