# Copyright (c) muscle_mm contributors. All rights reserved.
from .multi_source import MultiSourceWeightedSampler, MultiSourceXrayDataset

__all__ = ['MultiSourceXrayDataset', 'MultiSourceWeightedSampler']
