# Copyright (c) muscle_mm contributors. All rights reserved.
"""kNN and linear probes of a frozen backbone vs. the same backbone at its
random (Kaiming) initialisation, on a labelled X-ray task.

Features are the global average of the last ResNet stage, computed once per
image in eval mode; the probes are scikit-learn's ``KNeighborsClassifier``
(cosine distance) and ``LogisticRegression`` on standardised features. Each
is fitted on the task's train split and scored on its val + test splits,
and also scored by stratified k-fold cross-validation over all images
(steadier on a small demo set).

Example (demo pneumonia task, after the MD-MoCo demo run)::

    python tools/analysis_tools/knn_probe.py \
        configs/muscle/demo/mdmoco_r18_demo.py \
        work_dirs/mdmoco_demo/epoch_8.pth \
        --task configs/_base_/datasets/demo/pneumonia.py
"""
import argparse
import copy
import logging
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

import muscle_mm.datasets.readers  # noqa: F401 (until the shared
import muscle_mm.datasets.transforms  # noqa: F401  __init__ files import
from muscle_mm.registry import DATASETS, MODELS  # them)
from muscle_mm.utils import register_all_modules
from muscle_mm.utils.checkpoint import QUERY_PREFIX, extract_backbone


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='stage-1 config (backbone, mean/std)')
    parser.add_argument(
        'checkpoint', help='stage-1 checkpoint or exported backbone')
    parser.add_argument(
        '--task',
        default='configs/_base_/datasets/demo/pneumonia.py',
        help='dataset config with train/val/test dataloaders and a '
        'test_pipeline (labelled classification task)')
    parser.add_argument('--k', type=int, default=5, help='kNN neighbours')
    parser.add_argument('--folds', type=int, default=5, help='CV folds')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args()


def load_split(task: Config, loader: str) -> Tuple[list, str]:
    """Build a split of the task with the deterministic test pipeline."""
    ds_cfg = copy.deepcopy(task[loader].dataset)
    ds_cfg.pipeline = task.test_pipeline
    dataset = DATASETS.build(ds_cfg)
    return dataset, ds_cfg.get('split', loader)


@torch.no_grad()
def features(backbone: nn.Module, dataset, mean: torch.Tensor,
             std: torch.Tensor,
             batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    backbone.eval()
    feats, labels, chunk = [], [], []

    def flush() -> None:
        x = (torch.stack(chunk).to(mean.device).float() - mean) / std
        out = backbone(x)[-1]
        feats.append(out.mean(dim=(2, 3)).cpu().numpy())
        chunk.clear()

    for i in range(len(dataset)):
        item = dataset[i]
        chunk.append(item['inputs'])
        labels.append(int(item['data_samples'].gt_label))
        if len(chunk) == batch_size:
            flush()
    if chunk:
        flush()
    return np.concatenate(feats), np.asarray(labels)


def probe_scores(train: Tuple[np.ndarray, np.ndarray],
                 evals: Tuple[np.ndarray, np.ndarray], k: int, folds: int,
                 seed: int) -> Dict[str, float]:
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


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=True)
    # init_weights logs every tensor at INFO; keep the output to the table
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    cfg = Config.fromfile(args.config)
    task = Config.fromfile(args.task)
    pre = cfg.model.data_preprocessor
    device = torch.device(args.device)
    mean = torch.tensor(
        pre.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(
        pre.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    train_set, _ = load_split(task, 'train_dataloader')
    eval_sets = [
        load_split(task, name)
        for name in ('val_dataloader', 'test_dataloader') if name in task
    ]
    # val and test may be the same split (test_dataloader = val_dataloader)
    seen, unique_evals = set(), []
    for dataset, split in eval_sets:
        if split not in seen:
            seen.add(split)
            unique_evals.append((dataset, split))

    torch.manual_seed(args.seed)
    random_init = MODELS.build(copy.deepcopy(cfg.model.backbone))
    random_init.init_weights()  # the config's Kaiming init (Sec. 2.1)
    pretrained = MODELS.build(copy.deepcopy(cfg.model.backbone))
    ckpt = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    state = extract_backbone(
        ckpt.get('state_dict', ckpt),
        QUERY_PREFIX,
        target_prefix='',
        source=args.checkpoint)
    pretrained.load_state_dict(state)

    rows: List[Tuple[str, Dict[str, float]]] = []
    for name, backbone in (('random init (Kaiming)', random_init),
                           ('MD-MoCo', pretrained)):
        backbone.to(device)
        train = features(backbone, train_set, mean, std, args.batch_size)
        parts = [
            features(backbone, d, mean, std, args.batch_size)
            for d, _ in unique_evals
        ]
        evals = (np.concatenate([p[0] for p in parts]),
                 np.concatenate([p[1] for p in parts]))
        rows.append(
            (name, probe_scores(train, evals, args.k, args.folds, args.seed)))

    n_eval = sum(len(d) for d, _ in unique_evals)
    eval_names = '+'.join(s for _, s in unique_evals)
    print(f'Probe task {args.task}: fit on train ({len(train_set)} images), '
          f'scored on {eval_names} ({n_eval} images); CV = stratified '
          f'{args.folds}-fold over all {len(train_set) + n_eval} images')
    header = list(rows[0][1])
    print(f'{"backbone":24s}' + ''.join(f'{h:>12s}' for h in header))
    for name, scores in rows:
        print(f'{name:24s}' + ''.join(f'{100 * scores[h]:11.1f}%'
                                      for h in header))


if __name__ == '__main__':
    main()
