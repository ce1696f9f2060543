# Copyright (c) muscle_mm contributors. All rights reserved.
"""The kNN/linear probe's features (muscle_mm.evaluation.probe)."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

from muscle_mm.evaluation.probe import features, probe_scores


class TinyBackbone(nn.Module):
    """One conv stage, returned as a tuple of stages like a ResNet's."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return (self.conv(x), )


def dataset(n=8, nan_at=()):
    """``n`` images (uint8-valued floats), NaN pixels in ``nan_at``."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        img = torch.from_numpy(rng.integers(0, 256, (3, 12, 12))).float()
        if i in nan_at:
            img[0, 3, 3] = float('nan')
        sample = DataSample(metainfo=dict(img_path=f'/data/img{i}.png'))
        items.append(dict(inputs=img, data_samples=sample.set_gt_label(i % 2)))
    return items


MEAN = torch.full((1, 3, 1, 1), 128.)
STD = torch.full((1, 3, 1, 1), 64.)


def test_finite_features_reach_the_probes():
    feats, labels = features(TinyBackbone(), dataset(), MEAN, STD, 3)
    assert feats.shape == (8, 4) and np.isfinite(feats).all()
    assert labels.tolist() == [0, 1] * 4
    scores = probe_scores((feats, labels), (feats, labels), k=1, folds=2,
                          seed=0)
    assert scores['kNN'] == 1.0  # each image is its own nearest neighbour


def test_nan_features_are_refused_naming_the_images():
    """A NaN in the model's output stops before sklearn's bare "Input X
    contains NaN", naming the images and the probe."""
    with pytest.raises(ValueError) as e:
        features(TinyBackbone(), dataset(nan_at=(2, 5)), MEAN, STD, 3,
                 what="kNN/linear probe of 'stage 1'")
    msg = str(e.value)
    assert msg.startswith("kNN/linear probe of 'stage 1': the model "
                          'produced NaN'), msg
    assert '2 of 8 samples' in msg, msg
    assert '/data/img2.png' in msg and '/data/img5.png' in msg, msg
    assert '/data/img3.png' not in msg, msg
    # a diverged backbone (NaN weights): every image, the first five named
    backbone = TinyBackbone()
    with torch.no_grad():
        backbone.conv.weight[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='8 of 8 samples') as e:
        features(backbone, dataset(), MEAN, STD, 3)
    assert '/data/img4.png' in str(e.value)
