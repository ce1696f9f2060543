# Copyright (c) muscle_mm contributors. All rights reserved.
"""Generated test inputs: synthetic miniatures of the nine MUSCLE X-ray
datasets in their native layouts (the OpenMMLab ``testing`` convention).

``generate_demo_data(out_dir)`` writes small, deterministic, learnable
stand-ins for NIH ChestX-ray14, Shenzhen, Montgomery, Indiana, RSNA Bone Age,
paediatric pneumonia, MURA, the Kaggle lung masks and TBX11K, so pipelines
and configs can run end to end without the real downloads. numpy and cv2
only: ``import muscle_mm.testing`` works before torch and the OpenMMLab stack
are installed. ``write_dicom`` writes test DICOMs (pydicom).
"""
from .dicom import write_dicom
from .generator import (DEMO_DATASETS, DEMO_SPLIT_PROPORTIONS,
                        generate_demo_data)

__all__ = [
    'DEMO_DATASETS', 'DEMO_SPLIT_PROPORTIONS', 'generate_demo_data',
    'write_dicom'
]
