# Copyright (c) muscle_mm contributors. All rights reserved.
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from muscle_mm.registry import MODELS


@MODELS.register_module()
class BoneAgeRegressionHead(BaseModule):
    """Pooled features -> bone age in months; L1 loss.

    Used inside mmpretrain's ``ImageClassifier`` (named
    ``'muscle_mm.BoneAgeRegressionHead'`` there), which calls ``loss`` and
    ``predict`` as it does for its own heads.

    Args:
        in_channels (int): Channels of the last feature map (512 for
            ResNet-18, 2048 for ResNet-50).
        scale (float): Months per unit of the output, so the loss and the
            layer work near 1. Defaults to 100.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 scale: float = 100.,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fc = nn.Linear(in_channels, 1)
        self.scale = scale

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc(feats[-1]).squeeze(1) * self.scale

    def loss(self, feats: Tuple[torch.Tensor],
             data_samples: Sequence) -> dict:
        age = self(feats)
        target = age.new_tensor([float(s.gt_age) for s in data_samples])
        return dict(loss_age=F.l1_loss(age / self.scale, target / self.scale))

    def predict(self, feats: Tuple[torch.Tensor],
                data_samples: Sequence) -> List:
        for sample, age in zip(data_samples, self(feats).detach()):
            sample.set_field(age, 'pred_age')
        return data_samples
