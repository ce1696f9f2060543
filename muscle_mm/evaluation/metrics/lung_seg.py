# Copyright (c) muscle_mm contributors. All rights reserved.
"""Lung segmentation figures of Table 3 (Dice, mIoU)."""
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.evaluation import IoUMetric

from muscle_mm.registry import METRICS
from .score_checks import check_finite_scores


#: file-name prefix -> source set of the Kaggle lung masks' images
LUNG_SOURCES = dict(MCUCXR='Montgomery', CHNCXR='Shenzhen')


def source_of(img_path: Optional[str]) -> Optional[str]:
    """``'Montgomery'`` (``MCUCXR_*``), ``'Shenzhen'`` (``CHNCXR_*``) or
    None, from an image's file name."""
    prefix = osp.basename(img_path or '').split('_')[0]
    return LUNG_SOURCES.get(prefix)


@METRICS.register_module()
class LungSegMetric(BaseMetric):
    """Dice and mIoU of lung segmentation (MUSCLE, Sec. 3, Table 3).

    Keys ``lung/{Dice, Dice_pooled, mIoU, IoU_<class>, Dice_<source>,
    mIoU_<source>}``, in **percent**
    like the paper's tables, defined as:

    - **Dice** of the lung class, ``2|P ∩ G| / (|P| + |G|)`` per image,
      *averaged over the images* of the set: the common practice for the
      Montgomery / Shenzhen lung masks ("Chest Xray Masks and Labels"), where
      each radiograph counts once whatever its lung area. An image where both
      P and G are empty gets Dice 1 (perfect agreement on "no lung").
      ``Dice_pooled`` (one ratio over all pixels of the set) is also reported.
    - **mIoU**: mean over the classes {background, lung} of
      ``IoU_c = sum_i |P_c ∩ G_c| / sum_i |P_c ∪ G_c|`` pooled over the set,
      as mmseg's ``IoUMetric`` does. A class absent from both prediction and
      ground truth of the whole set gets IoU 1 (same convention as Dice), so
      the figure is always defined.

    - **Per source**: ``Dice_<source>`` and ``mIoU_<source>``, the same
      figures on the images of Montgomery (``MCUCXR_*``) and of Shenzhen
      (``CHNCXR_*``) alone, for each source among the evaluated images:
      the two sets differ (Montgomery's are fewer and larger), and
      published results are often per set.

    Pixels equal to ``ignore_index`` in the ground truth are left out. The
    per-image areas come from mmseg's ``IoUMetric.intersect_and_union``.
    NaN or infinite ``seg_logits`` (a diverged model, whose masks would be
    argmax artefacts) raise a ``ValueError`` naming the images.

    Args:
        lung_index (int): Label of the lung class. Defaults to 1.
        num_classes (int): Number of classes (background, lung). Defaults
            to 2.
        ignore_index (int): Ground-truth label left out. Defaults to 255.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            'lung'.
    """
    default_prefix: Optional[str] = 'lung'

    def __init__(self,
                 lung_index: int = 1,
                 num_classes: int = 2,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 <= lung_index < num_classes:
            raise ValueError(f'lung_index={lung_index} must be a class index '
                             f'below num_classes={num_classes}')
        self.lung_index = lung_index
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep the per-class intersection/union/areas of each image."""
        for sample in data_samples:
            where = sample.get('img_path', 'a sample')
            if 'pred_sem_seg' not in sample or 'gt_sem_seg' not in sample:
                raise KeyError(
                    'LungSegMetric needs `pred_sem_seg` and `gt_sem_seg` in '
                    'each data sample (mmseg SegDataSample), found keys '
                    f'{sorted(sample)} for {where}')
            pred = torch.as_tensor(sample['pred_sem_seg']['data']).squeeze()
            gt = torch.as_tensor(sample['gt_sem_seg']['data']).squeeze()
            gt = gt.to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(
                    f'{where}: prediction {tuple(pred.shape)} and ground '
                    f'truth {tuple(gt.shape)} differ in size; predict at the '
                    'original resolution (mmseg rescales by default)')
            valid_gt = gt[gt != self.ignore_index]
            for name, labels in (('prediction', pred), ('ground truth',
                                                        valid_gt)):
                # histc would silently drop labels outside [0, num_classes)
                if labels.numel() and (labels.min() < 0
                                       or labels.max() >= self.num_classes):
                    raise ValueError(
                        f'{where}: {name} holds labels '
                        f'{torch.unique(labels).tolist()}, expected 0..'
                        f'{self.num_classes - 1} (or {self.ignore_index} '
                        'to ignore)')
            areas = IoUMetric.intersect_and_union(pred, gt, self.num_classes,
                                                  self.ignore_index)
            # up to 4 non-finite logits of the image, for the error message
            bad = []
            if 'seg_logits' in sample:
                logits = torch.as_tensor(sample['seg_logits']['data'])
                bad = logits[~torch.isfinite(logits)][:4].cpu().tolist()
            # on the prediction's device (a GPU in a GPU run)
            self.results.append((*(a.cpu().numpy() for a in areas), bad,
                                 sample.get('img_path')))

    def _figures(self, inter: np.ndarray, union: np.ndarray,
                 area_pred: np.ndarray, area_gt: np.ndarray) -> tuple:
        """Dice (mean over images), pooled Dice and mIoU in percent, and
        the per-class IoU (fractions), of a set of images' areas."""
        k = self.lung_index
        denom = area_pred[:, k] + area_gt[:, k]
        dice = np.where(denom > 0, 2 * inter[:, k] / np.maximum(denom, 1), 1.)
        total_denom = denom.sum()
        dice_pooled = 2 * inter[:, k].sum() / total_denom if total_denom \
            else 1.
        total_union = union.sum(0)
        iou = np.where(total_union > 0,
                       inter.sum(0) / np.maximum(total_union, 1), 1.)
        return dict(
            Dice=100. * float(dice.mean()),
            Dice_pooled=100. * float(dice_pooled),
            mIoU=100. * float(iou.mean())), iou

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Dice (mean over images), pooled Dice, per-class IoU and mIoU."""
        if not results:
            raise ValueError('LungSegMetric got no samples; is the test '
                             'dataloader empty?')
        *areas, bad, paths = zip(*results)
        check_finite_scores(
            [np.asarray(b, dtype=np.float64) for b in bad],
            [p or f'sample {i}' for i, p in enumerate(paths)],
            'LungSegMetric (seg_logits)')
        inter, union, area_pred, area_gt = (
            np.stack(x).astype(np.float64) for x in areas)
        metrics, iou = self._figures(inter, union, area_pred, area_gt)
        sources = np.asarray([source_of(p) for p in paths], dtype=object)
        for name in LUNG_SOURCES.values():
            idx = sources == name
            if idx.any():
                sub, _ = self._figures(inter[idx], union[idx],
                                       area_pred[idx], area_gt[idx])
                metrics[f'Dice_{name}'] = sub['Dice']
                metrics[f'mIoU_{name}'] = sub['mIoU']
        k = self.lung_index
        names = (self.dataset_meta or {}).get('classes')
        if not names or len(names) != self.num_classes:
            other = 'background' if self.num_classes == 2 else 'class{}'
            names = [
                'lung' if c == k else other.format(c)
                for c in range(self.num_classes)
            ]
        for name, value in zip(names, iou):
            metrics[f'IoU_{name}'] = 100. * float(value)
        return metrics
