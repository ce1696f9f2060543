# Copyright (c) muscle_mm contributors. All rights reserved.
"""Synthetic miniatures of the nine MUSCLE X-ray datasets (native layouts).

``generate_demo_data(out_dir)`` writes small, deterministic, learnable
stand-ins for NIH ChestX-ray14, Shenzhen, Montgomery, Indiana, RSNA Bone Age,
paediatric pneumonia, MURA, the Kaggle lung masks and TBX11K, so pipelines
and configs can run end to end without the real downloads. Pure numpy/cv2:
importable before mmcv/mmengine are installed.
"""
from .generator import (DEMO_DATASETS, DEMO_SPLIT_PROPORTIONS,
                        generate_demo_data)

__all__ = ['DEMO_DATASETS', 'DEMO_SPLIT_PROPORTIONS', 'generate_demo_data']
