# Copyright (c) muscle_mm contributors. All rights reserved.
"""Scores of the trivial predictors on a test split (issue 13).

What a model must beat for its figure to mean anything, computed from the
labels of the split it is tested on, with the definitions of the task's
metric (:mod:`muscle_mm.evaluation.metrics`), in percent:

- classification (Pneumonia, MURA): always the majority class; a constant
  score has AUC 50 (and a degenerate CI, 50-50);
- lung segmentation: an all-background mask (Dice 0 on every image with
  lung, 1 on an image without; mIoU the mean of the background IoU, the
  background's share of the pixels, and the lung IoU 0);
- TB detection: no boxes, AP 0 for every class with a ground-truth box.
"""
import math
from typing import Dict, Iterable, List, Mapping, Sequence

import cv2
import numpy as np

#: How each task's trivial predictor is named in the report.
BASELINE_NAMES = dict(
    pneumonia='majority class',
    mura='majority class',
    lung='all-background mask',
    tbx='no boxes')


def classification_baseline(labels: Sequence[int]) -> Dict[str, float]:
    """Always predicting the more frequent class of ``labels`` (0/1)."""
    labels = np.asarray(labels, dtype=int)
    if labels.size == 0:
        raise ValueError('classification_baseline got no labels')
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    positive = n_pos > n_neg
    return dict(
        accuracy=100. * max(n_pos, n_neg) / labels.size,
        sensitivity=100. if positive else 0.,
        specificity=0. if positive else 100.,
        auc=50.,
        auc_ci_low=50.,
        auc_ci_high=50.,
        num_positive=n_pos,
        num_negative=n_neg)


def empty_mask_baseline(masks: Iterable[np.ndarray]) -> Dict[str, float]:
    """An all-background prediction scored as ``LungSegMetric`` does."""
    dice, background, pixels, lung = [], 0, 0, 0
    for mask in masks:
        area = int(np.count_nonzero(mask))
        dice.append(0. if area else 1.)
        lung += area
        background += mask.size - area
        pixels += mask.size
    if not pixels:
        raise ValueError('empty_mask_baseline got no masks')
    iou_lung = 0. if lung else 1.
    iou_background = background / pixels
    return dict(
        Dice=100. * float(np.mean(dice)),
        Dice_pooled=0. if lung else 100.,
        mIoU=100. * (iou_background + iou_lung) / 2)


def no_boxes_baseline(class_has_boxes: Dict[str, bool]) -> Dict[str, float]:
    """No detection at all: AP 0 for every class with ground truth (NaN,
    and left out of the mean, for one without), as ``TBDetectionMetric``."""
    out = {
        f'AP_{name}': 0. if has else float('nan')
        for name, has in class_has_boxes.items()
    }
    out['mAP'] = 0. if any(class_has_boxes.values()) else float('nan')
    return out


def test_split_baseline(task: str, dataset) -> Dict[str, float]:
    """The trivial baseline of ``task`` on a built test ``dataset``.

    Args:
        task: ``pneumonia``, ``mura``, ``lung`` or ``tbx``.
        dataset: The task's test dataset (an mmengine ``BaseDataset``).
    """
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    if task in ('pneumonia', 'mura'):
        return classification_baseline([int(d['gt_label']) for d in infos])
    if task == 'lung':
        masks = []
        for d in infos:
            mask = cv2.imread(d['seg_map_path'], cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise FileNotFoundError(
                    f'{d["seg_map_path"]}: lung mask of the test split '
                    'cannot be read')
            masks.append(mask > 0)
        return empty_mask_baseline(masks)
    if task == 'tbx':
        from .metrics.tb_detection import TBX_ALIASES as aliases
        classes = list(dataset.metainfo['classes'])
        has = {aliases.get(c, c): False for c in classes}
        for d in infos:
            for inst in d.get('instances', []):
                if not inst.get('ignore_flag', 0):
                    has[aliases.get(classes[inst['bbox_label']],
                                    classes[inst['bbox_label']])] = True
        return no_boxes_baseline(has)
    raise ValueError(f'No trivial baseline for task {task!r}; expected '
                     f"one of {sorted(BASELINE_NAMES)}")


#: Margin over the baseline asked of Dice / mIoU, which have no CI here: on
#: the demo's ~30 test images their 95% CI spans a few points.
SEG_MARGIN = 10.


def _value(metrics: Mapping, name: str) -> float:
    for key, value in metrics.items():
        if key.rsplit('/', 1)[-1] == name:
            return float(value)
    raise KeyError(f'metric {name!r} not among {sorted(metrics)}')


def baseline_failures(task: str, metrics: Mapping,
                      baseline: Mapping) -> List[str]:
    """Why a model does not beat its task's trivial baseline by more than
    its CI; an empty list when it does.

    - classification: the AUC's 95% CI lies above 50, and accuracy minus
      its 95% (normal) half-width lies above the majority-class accuracy;
    - lung: Dice and mIoU exceed the empty mask's by :data:`SEG_MARGIN`;
    - TB: mAP above 0 (the no-box baseline).
    """
    out = []
    if task in ('pneumonia', 'mura'):
        n = baseline['num_positive'] + baseline['num_negative']
        acc = _value(metrics, 'accuracy')
        half = 196. * math.sqrt(max(acc, 1e-9) / 100 *
                                max(100 - acc, 1e-9) / 100 / n)
        if not acc - half > baseline['accuracy']:
            out.append(f'accuracy {acc:.2f} +- {half:.2f} does not clear the '
                       f'majority class ({baseline["accuracy"]:.2f})')
        low = _value(metrics, 'auc_ci_low')
        if not low > baseline['auc']:
            out.append(f'AUC CI low {low:.2f} is not above '
                       f'{baseline["auc"]:.0f}')
    elif task == 'lung':
        for name in ('Dice', 'mIoU'):
            value = _value(metrics, name)
            if not value > baseline[name] + SEG_MARGIN:
                out.append(f'{name} {value:.2f} is not {SEG_MARGIN:.0f} '
                           f'points above the empty mask '
                           f'({baseline[name]:.2f})')
    elif task == 'tbx':
        value = _value(metrics, 'mAP')
        if not value > 0:
            out.append(f'mAP {value:.2f} is not above 0 (no boxes)')
    else:
        raise ValueError(f'No trivial baseline for task {task!r}')
    return out
