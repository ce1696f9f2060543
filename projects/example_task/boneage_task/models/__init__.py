# Copyright (c) muscle_mm contributors. All rights reserved.
from .boneage_head import BoneAgeRegressionHead

__all__ = ['BoneAgeRegressionHead']
