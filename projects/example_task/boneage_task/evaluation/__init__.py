# Copyright (c) muscle_mm contributors. All rights reserved.
from .boneage_mae import BoneAgeMAE

__all__ = ['BoneAgeMAE']
