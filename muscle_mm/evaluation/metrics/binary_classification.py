# Copyright (c) muscle_mm contributors. All rights reserved.
"""Binary classification figures of Table 2 (Pneumonia, MURA)."""
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from sklearn.metrics import roc_auc_score, roc_curve

from muscle_mm.registry import METRICS
from .score_checks import check_finite_scores


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _json_safe(values: np.ndarray) -> List[Optional[float]]:
    """Floats for JSON; non-finite values (sklearn's first ROC threshold is
    ``inf``) become ``null`` so that the file stays standard JSON."""
    return [float(v) if np.isfinite(v) else None for v in values]


def bootstrap_auc_ci(y_true: np.ndarray,
                     y_score: np.ndarray,
                     num_resamples: int = 100,
                     ci: float = 0.95,
                     seed: int = 0) -> Dict[str, float]:
    """Percentile bootstrap confidence interval of the ROC AUC.

    The test set is resampled with replacement ``num_resamples`` times (the
    paper, Sec. 3: "bootstrapping with 100 independent trials on testing
    sets"). A resample holding one class only has no AUC; it is skipped and
    counted, as is common practice.

    Returns:
        dict: ``low`` and ``high`` (fractions, NaN when no resample was
        valid), ``num_valid`` and ``num_skipped``.
    """
    if not 0 < ci < 1:
        raise ValueError(f'ci must lie in (0, 1), got {ci}')
    check_finite_scores(
        np.asarray(y_score, dtype=np.float64),
        [f'sample {i}' for i in range(len(y_score))], 'bootstrap_auc_ci')
    rng = np.random.default_rng(seed)
    n = len(y_true)
    aucs = []
    num_skipped = 0
    for _ in range(num_resamples):
        idx = rng.integers(0, n, size=n)
        if np.unique(y_true[idx]).size < 2:
            num_skipped += 1
            continue
        aucs.append(roc_auc_score(y_true[idx], y_score[idx]))
    if aucs:
        tail = (1 - ci) / 2 * 100
        low, high = np.percentile(aucs, [tail, 100 - tail])
    else:
        low = high = float('nan')
    return dict(
        low=float(low),
        high=float(high),
        num_valid=len(aucs),
        num_skipped=num_skipped)


def cohen_kappa(preds: np.ndarray, gts: np.ndarray) -> float:
    """Cohen's kappa of two binary ratings, ``(p_o - p_e) / (1 - p_e)``
    (observed vs chance agreement), as a fraction; NaN when chance
    agreement is certain (both raters constant and equal)."""
    preds, gts = np.asarray(preds, bool), np.asarray(gts, bool)
    p_o = float(np.mean(preds == gts))
    p_e = float(preds.mean() * gts.mean() + (1 - preds.mean()) *
                (1 - gts.mean()))
    return (p_o - p_e) / (1 - p_e) if p_e < 1 else float('nan')


def study_of(img_path: str) -> str:
    """The study of an image: its folder (MURA's ``.../patientN/
    studyK_<label>/imageJ.png``)."""
    return osp.dirname(osp.normpath(img_path))


def study_scores(scores: np.ndarray, gts: np.ndarray,
                 paths: Sequence[Optional[str]]) -> tuple:
    """Per study (:func:`study_of`, sorted): the mean positive score of
    its images, its label and its name. As the MURA paper (Rajpurkar et al.
    2017), a study is abnormal when that mean is >= 0.5. Every image of a
    study must have its label."""
    by_study: Dict[str, list] = {}
    for i, path in enumerate(paths):
        if not path:
            raise ValueError('study_level=True needs the img_path of every '
                             f'sample (sample {i} has none) to find its '
                             'study')
        by_study.setdefault(study_of(path), []).append(i)
    names = sorted(by_study)
    mean, label = [], []
    for name in names:
        idx = by_study[name]
        labels = set(bool(gts[i]) for i in idx)
        if len(labels) > 1:
            raise ValueError(f'study {name}: its images have different '
                             'labels; expected one label per study (MURA '
                             'labels studies)')
        mean.append(float(np.mean(scores[idx])))
        label.append(labels.pop())
    return np.asarray(mean), np.asarray(label, dtype=bool), names


@METRICS.register_module()
class BinaryClassificationMetric(BaseMetric):
    """Accuracy, sensitivity, specificity and AUC (95% CI) of a binary task.

    The figures of the paper's Table 2 and the ROC curves of Fig. 2 (MUSCLE,
    Sec. 3). All figures are in **percent**, like the paper's tables.
    Keys: ``binary/{accuracy, sensitivity, specificity, auc, auc_ci_low,
    auc_ci_high}``.

    - A sample is predicted positive when its positive-class score is
      ``>= threshold`` (sklearn's ROC convention, so the operating point lies
      on the saved ROC curve); ``threshold=None`` uses the argmax of
      ``pred_score`` instead (mmpretrain's ``pred_label``; a 0.5/0.5 tie
      goes to class 0). A one-element ``pred_score`` is read as the sigmoid
      probability of the positive class.
    - Sensitivity = TP / (TP + FN), specificity = TN / (TN + FP).
    - AUC by ``sklearn.metrics.roc_auc_score``; its CI by a seeded percentile
      bootstrap of the test set (:func:`bootstrap_auc_ci`).
    - Degenerate sets: with one class only, AUC and its CI (and sensitivity
      without positives, specificity without negatives) are undefined and
      reported as NaN with a warning, so that a tiny validation split does not
      stop a training run. When more than ``max_skip_ratio`` of the bootstrap
      resamples hold one class only, the CI would rest on a biased subset and
      a ``ValueError`` is raised.
    - A NaN or infinite score (a diverged model) raises a ``ValueError``
      that names the samples.

    - ``study_level=True`` (MURA) adds Cohen's ``kappa`` of the image
      predictions and the same figures per study: a study (the folder of
      its images' ``img_path``) is abnormal when the mean positive score of
      its images is ``>= threshold`` (0.5, as the MURA paper), keys
      ``binary/study_{accuracy, sensitivity, specificity, auc, auc_ci_low,
      auc_ci_high, kappa, count}``. Kappa, the MURA leaderboard's figure,
      is a **fraction** in [-1, 1] as published (0.705 for the MURA paper's
      model), not a percentage.

    The ROC points (``fpr``, ``tpr``, ``thresholds``, ``auc``, ``ci``) are
    written to ``out_dir/roc_file`` as JSON when ``out_dir`` is given, for
    :func:`muscle_mm.visualization.plots.plot_roc_curves`; the last curve is
    also kept in ``self.roc``.

    Args:
        pos_label (int): Index of the positive class in ``pred_score`` and
            ``gt_label`` ('pneumonia' / 'abnormal'). Defaults to 1.
        threshold (float, optional): Threshold on the positive score. Defaults
            to 0.5.
        num_bootstrap (int): Bootstrap resamples for the AUC CI. Defaults to
            100, as the paper.
        ci (float): Confidence level. Defaults to 0.95.
        seed (int): Seed of the bootstrap. Defaults to 0.
        max_skip_ratio (float): Largest tolerated fraction of one-class
            resamples; 1.0 never raises. Defaults to 0.5.
        out_dir (str, optional): Where to write the ROC JSON. Defaults to None
            (not written).
        roc_file (str): File name of the ROC JSON. Defaults to 'roc.json'.
        study_level (bool): Also score studies and report kappa (see
            above). Defaults to False.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            'binary'.
    """
    default_prefix: Optional[str] = 'binary'

    def __init__(self,
                 pos_label: int = 1,
                 threshold: Optional[float] = 0.5,
                 num_bootstrap: int = 100,
                 ci: float = 0.95,
                 seed: int = 0,
                 max_skip_ratio: float = 0.5,
                 out_dir: Optional[str] = None,
                 roc_file: str = 'roc.json',
                 study_level: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if threshold is not None and not 0 <= threshold <= 1:
            raise ValueError('threshold must be a score in [0, 1] or None '
                             f'(argmax), got {threshold}')
        if num_bootstrap < 1:
            raise ValueError(
                f'num_bootstrap must be >= 1, got {num_bootstrap}')
        if not 0 <= max_skip_ratio <= 1:
            raise ValueError(
                f'max_skip_ratio must lie in [0, 1], got {max_skip_ratio}')
        self.pos_label = pos_label
        self.threshold = threshold
        self.num_bootstrap = num_bootstrap
        self.ci = ci
        self.seed = seed
        self.max_skip_ratio = max_skip_ratio
        self.out_dir = out_dir
        self.roc_file = roc_file
        self.study_level = study_level
        self.roc: Optional[dict] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep the positive score, the predicted and the true label."""
        for sample in data_samples:
            if 'pred_score' not in sample or 'gt_label' not in sample:
                raise KeyError(
                    'BinaryClassificationMetric needs `pred_score` and '
                    '`gt_label` in each data sample (mmpretrain DataSample), '
                    f'found keys {sorted(sample)} for '
                    f"{sample.get('img_path', 'a sample')}")
            score = _to_numpy(sample['pred_score']).astype(np.float64)
            score = score.reshape(-1)
            gt = _to_numpy(sample['gt_label']).reshape(-1)
            where = sample.get('img_path', 'a sample')
            if gt.size != 1:
                raise ValueError(f'gt_label of {where} must hold one class '
                                 f'index, got {gt.tolist()}')
            if score.size == 1:
                # a single sigmoid output is the positive-class probability
                pos_score = float(score[0])
                pred_pos = pos_score >= (0.5 if self.threshold is None else
                                         self.threshold)
            else:
                if not 0 <= self.pos_label < score.size:
                    raise ValueError(
                        f'pos_label={self.pos_label} is out of range for '
                        f'pred_score of {score.size} classes ({where})')
                pos_score = float(score[self.pos_label])
                if self.threshold is None:
                    pred_pos = int(score.argmax()) == self.pos_label
                else:
                    pred_pos = pos_score >= self.threshold
            self.results.append(
                (pos_score, bool(pred_pos), int(gt[0]) == self.pos_label,
                 score.tolist(), sample.get('img_path')))

    def _figures(self, scores: np.ndarray, preds: np.ndarray,
                 gts: np.ndarray, what: str) -> tuple:
        """Acc / Sen / Spe / AUC and its CI in percent, and the ROC pieces
        ``(auc, ci, fpr, tpr, thresholds)``, of one set of ``what``."""
        tp = int(np.sum(preds & gts))
        tn = int(np.sum(~preds & ~gts))
        fp = int(np.sum(preds & ~gts))
        fn = int(np.sum(~preds & gts))
        nan = float('nan')
        metrics = dict(
            accuracy=100.0 * (tp + tn) / len(gts),
            sensitivity=100.0 * tp / (tp + fn) if tp + fn else nan,
            specificity=100.0 * tn / (tn + fp) if tn + fp else nan)

        logger = MMLogger.get_current_instance()
        if np.unique(gts).size < 2:
            msg = (f'BinaryClassificationMetric: all {len(gts)} {what} are '
                   f'{"positive" if gts[0] else "negative"}; AUC and its CI '
                   'are undefined and reported as NaN.')
            warnings.warn(msg)
            logger.warning(msg)
            auc, ci = nan, dict(low=nan, high=nan, num_valid=0, num_skipped=0)
            fpr = tpr = thresholds = np.zeros(0)
        else:
            auc = roc_auc_score(gts, scores)
            fpr, tpr, thresholds = roc_curve(gts, scores)
            ci = bootstrap_auc_ci(gts, scores, self.num_bootstrap, self.ci,
                                  self.seed)
            if ci['num_skipped'] > self.max_skip_ratio * self.num_bootstrap:
                raise ValueError(
                    f'{ci["num_skipped"]} of {self.num_bootstrap} bootstrap '
                    f'resamples held one class only (test set: '
                    f'{int(gts.sum())} positive, {int((~gts).sum())} '
                    f'negative {what}); the AUC CI would be biased. Use a '
                    'larger test set or raise max_skip_ratio (now '
                    f'{self.max_skip_ratio}).')
            if ci['num_skipped']:
                logger.info(f'AUC bootstrap: skipped {ci["num_skipped"]} '
                            'one-class resamples')
        metrics.update(
            auc=100.0 * auc,
            auc_ci_low=100.0 * ci['low'],
            auc_ci_high=100.0 * ci['high'])
        return metrics, (auc, ci, fpr, tpr, thresholds)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Figures in percent; see the class docstring for the NaN cases."""
        if not results:
            raise ValueError('BinaryClassificationMetric got no samples; '
                             'is the test dataloader empty?')
        scores, preds, gts, raw, paths = zip(*results)
        check_finite_scores(raw,
                            [p or f'sample {i}' for i, p in enumerate(paths)],
                            'BinaryClassificationMetric')
        scores, preds, gts = (np.asarray(x) for x in (scores, preds, gts))
        scores = scores.astype(np.float64)
        metrics, (auc, ci, fpr, tpr, thresholds) = self._figures(
            scores, preds, gts, 'samples')
        if self.study_level:
            metrics['kappa'] = cohen_kappa(preds, gts)
            s_scores, s_gts, _ = study_scores(scores, gts, paths)
            s_preds = s_scores >= (0.5 if self.threshold is None else
                                   self.threshold)
            study, _ = self._figures(s_scores, s_preds, s_gts, 'studies')
            study['kappa'] = cohen_kappa(s_preds, s_gts)
            study['count'] = float(len(s_gts))
            metrics.update({f'study_{k}': v for k, v in study.items()})

        self.roc = dict(
            fpr=_json_safe(fpr),
            tpr=_json_safe(tpr),
            thresholds=_json_safe(thresholds),
            auc=_json_safe([auc])[0],
            ci=[_json_safe([ci['low']])[0],
                _json_safe([ci['high']])[0]],
            ci_level=self.ci,
            num_bootstrap=self.num_bootstrap,
            num_bootstrap_skipped=ci['num_skipped'],
            num_positive=int(gts.sum()),
            num_negative=int((~gts).sum()),
            pos_label=self.pos_label,
            classes=list((self.dataset_meta or {}).get('classes', [])),
            unit='fraction')
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            with open(osp.join(self.out_dir, self.roc_file), 'w') as f:
                json.dump(self.roc, f, indent=1)
        return metrics
