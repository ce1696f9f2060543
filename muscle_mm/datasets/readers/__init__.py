# Copyright (c) muscle_mm contributors. All rights reserved.
"""Readers of the nine public X-ray datasets of MUSCLE (Table 1), each in
the layout as distributed."""
from .base import TABLE1, DatasetFormatError
from .indiana import IndianaCXRDataset
from .lung_masks import ChestXrayMasksDataset
from .montgomery import MontgomeryCXRDataset
from .mura import MURADataset
from .nih import NIHChestXray14Dataset
from .pneumonia import KermanyPneumoniaDataset
from .rsna_boneage import RSNABoneAgeDataset
from .shenzhen import ShenzhenCXRDataset
from .tbx11k import TBX11KDataset

__all__ = [
    'TABLE1', 'DatasetFormatError', 'NIHChestXray14Dataset',
    'ShenzhenCXRDataset', 'MontgomeryCXRDataset', 'IndianaCXRDataset',
    'RSNABoneAgeDataset', 'KermanyPneumoniaDataset', 'MURADataset',
    'ChestXrayMasksDataset', 'TBX11KDataset'
]
