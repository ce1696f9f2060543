# Copyright (c) muscle_mm contributors. All rights reserved.
from .boneage_dataset import BoneAgeDataset

__all__ = ['BoneAgeDataset']
