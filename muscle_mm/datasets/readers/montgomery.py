# Copyright (c) muscle_mm contributors. All rights reserved.
from muscle_mm.registry import DATASETS
from .shenzhen import ShenzhenCXRDataset


@DATASETS.register_module()
class MontgomeryCXRDataset(ShenzhenCXRDataset):
    """Montgomery County CXR (Jaeger et al., QIMS 2014), MD-MoCo only.

    Reads ``CXR_png/MCUCXR_0001_0.png`` (last digit: ``tb_label``), also
    inside one extra ``MontgomerySet/`` folder. The lung masks in
    ``ManualMask/`` are not used: lung segmentation uses the Kaggle "Chest
    X-ray Masks and Labels" set (``ChestXrayMasksDataset``). 138 images.
    """

    SOURCE = 'montgomery'
    PREFIX = 'MCUCXR_'
    NESTS = ('', 'MontgomerySet')
