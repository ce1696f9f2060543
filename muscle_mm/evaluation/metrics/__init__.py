# Copyright (c) muscle_mm contributors. All rights reserved.
from .binary_classification import (BinaryClassificationMetric,
                                    bootstrap_auc_ci)
from .lung_seg import LungSegMetric
from .tb_detection import TBDetectionMetric

__all__ = [
    'BinaryClassificationMetric', 'bootstrap_auc_ci', 'LungSegMetric',
    'TBDetectionMetric'
]
