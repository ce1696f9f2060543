# Copyright (c) muscle_mm contributors. All rights reserved.
"""A fifth task for MUSCLE stage 2, from outside muscle_mm: bone age.

Importing the package registers its dataset, head and metric in muscle_mm's
registries; a config loads it with
``custom_imports = dict(imports=['boneage_task'])``.
"""
from .datasets import BoneAgeDataset
from .evaluation import BoneAgeMAE
from .models import BoneAgeRegressionHead

__all__ = ['BoneAgeDataset', 'BoneAgeRegressionHead', 'BoneAgeMAE']
