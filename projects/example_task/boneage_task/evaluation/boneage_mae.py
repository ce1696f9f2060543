# Copyright (c) muscle_mm contributors. All rights reserved.
from typing import List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from muscle_mm.registry import METRICS


@METRICS.register_module()
class BoneAgeMAE(BaseMetric):
    """Mean absolute error of the predicted bone age, in months (``mae``).

    An error: the accuracy matrix needs ``lower_is_better=['<task>']``.
    Args are mmengine ``BaseMetric``'s.
    """

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                abs(float(sample['pred_age']) - float(sample['gt_age'])))

    def compute_metrics(self, results: List[float]) -> dict:
        return dict(mae=float(np.mean(results)))
