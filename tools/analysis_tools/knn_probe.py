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
import logging

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from muscle_mm.apis.paths import get_config_path
from muscle_mm.evaluation.probe import (RANDOM_INIT, format_probe_rows,
                                        probe_backbones)
from muscle_mm.utils import register_all_modules


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='stage-1 config (backbone, mean/std)')
    parser.add_argument(
        'checkpoint', help='stage-1 checkpoint or exported backbone')
    parser.add_argument(
        '--task',
        help='dataset config with train/val/test dataloaders and a '
        'test_pipeline (labelled classification task); default: the demo '
        'pneumonia config of muscle_mm (_base_/datasets/demo/pneumonia.py)')
    parser.add_argument('--k', type=int, default=5, help='kNN neighbours')
    parser.add_argument('--folds', type=int, default=5, help='CV folds')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=True)
    # init_weights logs every tensor at INFO; keep the output to the table
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    cfg = Config.fromfile(args.config)
    args.task = args.task or get_config_path(
        '_base_/datasets/demo/pneumonia.py')
    task = Config.fromfile(args.task)
    out = probe_backbones(
        cfg.model,
        task, {
            RANDOM_INIT: None,
            'MD-MoCo': args.checkpoint
        },
        k=args.k,
        folds=args.folds,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device)
    n_train, n_eval = out['n_train'], out['n_eval']
    print(f'Probe task {args.task}: fit on train ({n_train} images), '
          f'scored on {"+".join(out["eval_splits"])} ({n_eval} images); '
          f'CV = stratified {args.folds}-fold over all {n_train + n_eval} '
          'images')
    print('\n'.join(format_probe_rows(out['scores'])))


if __name__ == '__main__':
    main()
