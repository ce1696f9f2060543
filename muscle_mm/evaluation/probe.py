# Copyright (c) muscle_mm contributors. All rights reserved.
"""kNN and linear probes of frozen backbones vs. random initialisation.

Features are the global average of the last ResNet stage, computed once per
image in eval mode with the task's test pipeline; the probes are
scikit-learn's ``KNeighborsClassifier`` (cosine distance) and
``LogisticRegression`` on standardised features, fitted on the task's train
split and scored on its val + test splits, and also scored by stratified
k-fold cross-validation over all images (steadier on a small demo set).
Used by ``tools/analysis_tools/knn_probe.py`` and the study's report.
"""
import copy
import logging
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from muscle_mm.evaluation.metrics.score_checks import check_finite_scores
from muscle_mm.registry import DATASETS, MODELS
from muscle_mm.utils.checkpoint import QUERY_PREFIX, extract_backbone

#: Name of the random-initialisation row of :func:`probe_backbones`.
RANDOM_INIT = 'random init (Kaiming)'
#: Probe scores in the order :func:`probe_scores` returns them.
PROBE_KEYS = ('kNN', 'linear', 'kNN CV', 'linear CV')


def load_split(task: Config, loader: str) -> Tuple[object, str]:
    """Build a split of the task with the deterministic test pipeline."""
    ds_cfg = copy.deepcopy(task[loader].dataset)
    ds_cfg.pipeline = task.test_pipeline
    dataset = DATASETS.build(ds_cfg)
    return dataset, ds_cfg.get('split', loader)


@torch.no_grad()
def features(backbone: nn.Module,
             dataset,
             mean: torch.Tensor,
             std: torch.Tensor,
             batch_size: int,
             what: str = 'the probe') -> Tuple[np.ndarray, np.ndarray]:
    """Pooled last-stage features and labels of every image of a dataset.

    A diverged backbone gives NaN features, which sklearn would reject with
    a bare "Input contains NaN"; they are refused here naming the images
    (``what`` says whose features, for the message).
    """
    backbone.eval()
    feats, labels, names, chunk = [], [], [], []

    def flush() -> None:
        x = (torch.stack(chunk).to(mean.device).float() - mean) / std
        out = backbone(x)[-1]
        feats.append(out.mean(dim=(2, 3)).cpu().numpy())
        chunk.clear()

    for i in range(len(dataset)):
        item = dataset[i]
        chunk.append(item['inputs'])
        labels.append(int(item['data_samples'].gt_label))
        names.append(
            item['data_samples'].metainfo.get('img_path', f'sample {i}'))
        if len(chunk) == batch_size:
            flush()
    if chunk:
        flush()
    out = np.concatenate(feats)
    check_finite_scores(out, names, what)
    return out, np.asarray(labels)


def probe_scores(train: Tuple[np.ndarray, np.ndarray],
                 evals: Tuple[np.ndarray, np.ndarray], k: int, folds: int,
                 seed: int) -> Dict[str, float]:
    """Accuracies (fractions) of the kNN and linear probes, see
    :data:`PROBE_KEYS`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    knn = KNeighborsClassifier(n_neighbors=k, metric='cosine')
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    x_all = np.concatenate([train[0], evals[0]])
    y_all = np.concatenate([train[1], evals[1]])
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return {
        'kNN': knn.fit(*train).score(*evals),
        'linear': linear.fit(*train).score(*evals),
        'kNN CV': cross_val_score(knn, x_all, y_all, cv=cv).mean(),
        'linear CV': cross_val_score(linear, x_all, y_all, cv=cv).mean(),
    }


def load_backbone(backbone_cfg: Mapping, checkpoint: Optional[str],
                  seed: int = 0) -> nn.Module:
    """The backbone of ``backbone_cfg`` with the weights of ``checkpoint``
    (a full model or an exported backbone), or at the config's random
    initialisation when ``checkpoint`` is None."""
    backbone = MODELS.build(copy.deepcopy(backbone_cfg))
    if checkpoint is None:
        torch.manual_seed(seed)
        backbone.init_weights()  # the config's Kaiming init (Sec. 2.1)
        return backbone
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = extract_backbone(
        ckpt.get('state_dict', ckpt),
        QUERY_PREFIX,
        target_prefix='',
        source=checkpoint)
    backbone.load_state_dict(state)
    return backbone


def probe_backbones(model_cfg: Mapping,
                    task: Config,
                    checkpoints: Mapping[str, Optional[str]],
                    k: int = 5,
                    folds: int = 5,
                    seed: int = 0,
                    batch_size: int = 32,
                    device: str = 'cpu') -> Dict[str, object]:
    """Probe several backbones of one architecture on one labelled task.

    Args:
        model_cfg: A model config with ``backbone`` and
            ``data_preprocessor`` (mean/std), e.g. stage 1's ``cfg.model``.
        task: Dataset config with ``train_dataloader``, ``val_dataloader``
            and/or ``test_dataloader`` and a ``test_pipeline``.
        checkpoints: Row name -> backbone file, None for the random init.
        k: kNN neighbours.
        folds: Cross-validation folds.
        seed: Seed of the random init and of the folds.
        batch_size: Images per forward pass.
        device: Where the backbones run.

    Returns:
        dict: ``scores`` ({row: {probe: accuracy fraction}}), ``n_train``,
        ``n_eval``, ``eval_splits`` and ``folds``.
    """
    # init_weights logs every tensor at INFO; keep the output to the table
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    # the task configs name muscle_mm's transforms without a scope
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        try:
            return _probe(model_cfg, task, checkpoints, k, folds, seed,
                          batch_size, device)
        finally:
            logger.setLevel(level)


def _probe(model_cfg: Mapping, task: Config,
           checkpoints: Mapping[str, Optional[str]], k: int, folds: int,
           seed: int, batch_size: int, device: str) -> Dict[str, object]:
    """:func:`probe_backbones` without its logging and scope set-up."""
    pre = model_cfg['data_preprocessor']
    dev = torch.device(device)
    mean = torch.tensor(
        pre['mean'], dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(
        pre['std'], dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    train_set, _ = load_split(task, 'train_dataloader')
    # val and test may be the same split (test_dataloader = val_...)
    evals, seen = [], set()
    for name in ('val_dataloader', 'test_dataloader'):
        if name in task:
            dataset, split = load_split(task, name)
            if split not in seen:
                seen.add(split)
                evals.append((dataset, split))
    scores = {}
    for row, checkpoint in checkpoints.items():
        backbone = load_backbone(model_cfg['backbone'], checkpoint,
                                 seed).to(dev)
        what = f'kNN/linear probe of {row!r}'
        train = features(backbone, train_set, mean, std, batch_size, what)
        parts = [
            features(backbone, d, mean, std, batch_size, what)
            for d, _ in evals
        ]
        held_out = (np.concatenate([p[0] for p in parts]),
                    np.concatenate([p[1] for p in parts]))
        scores[row] = probe_scores(train, held_out, k, folds, seed)
    return dict(
        scores=scores,
        n_train=len(train_set),
        n_eval=sum(len(d) for d, _ in evals),
        eval_splits=[s for _, s in evals],
        folds=folds)


def format_probe_rows(scores: Mapping[str, Mapping[str, float]],
                      keys: Sequence[str] = PROBE_KEYS) -> Sequence[str]:
    """Plain-text table lines, accuracies in percent."""
    lines = [f'{"backbone":24s}' + ''.join(f'{h:>12s}' for h in keys)]
    for name, row in scores.items():
        lines.append(f'{name:24s}' +
                     ''.join(f'{100 * row[h]:11.1f}%' for h in keys))
    return lines
