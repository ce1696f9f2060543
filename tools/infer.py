# Copyright (c) muscle_mm contributors. All rights reserved.
"""Run a MUSCLE model on new radiographs:
``python tools/infer.py CONFIG CHECKPOINT INPUTS... --out-dir DIR``.

INPUTS are image files (PNG 8/16-bit, JPEG, DICOM), folders (searched
recursively; DICOM files without suffix too) or lists of paths (``.txt``,
``.lst``, ``.list``). Per input: ``<name>.json``,
``<name>_vis.png`` (and ``<name>_lung_mask.png``); ``summary.csv`` lists
every input with its status. ``--features`` writes pooled backbone
embeddings instead (``features.npy`` + ``features.csv``).
"""
import argparse
import sys

from muscle_mm.apis import XrayInferencer
from muscle_mm.metainfo import TASKS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Inference on new radiographs with a stage-3 task model '
        'or a stage-2 multi-task checkpoint')
    parser.add_argument(
        'config', help='config file the model was trained '
        'with')
    parser.add_argument(
        'checkpoint', help='checkpoint written by '
        'tools/train.py')
    parser.add_argument(
        'inputs',
        nargs='+',
        help='image files, folders (searched recursively for .png .jpg '
        '.jpeg .bmp .tif .tiff .dcm .dicom .dic, and DICOM files without '
        'suffix) or lists of paths (.txt .lst .list)')
    parser.add_argument(
        '--out-dir', required=True, help='folder for the outputs')
    parser.add_argument(
        '--task',
        choices=[*TASKS, 'all'],
        help='head of a multi-task model (default: all); for a stage-3 '
        'model, its own task')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='boxes drawn from this score on (the JSON has all)')
    parser.add_argument(
        '--features',
        action='store_true',
        help='write pooled backbone embeddings (features.npy + '
        'features.csv) instead of predictions')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    inferencer = XrayInferencer(
        args.config,
        args.checkpoint,
        task=args.task,
        device=args.device,
        batch_size=args.batch_size,
        score_thr=args.score_thr)
    show = not args.no_progress
    if args.features:
        feats, items = inferencer.extract_features(
            args.inputs, out_dir=args.out_dir, show_progress=show)
        what = f'features {tuple(feats.shape)} in {args.out_dir}/features.npy'
    else:
        items = inferencer(
            args.inputs, out_dir=args.out_dir, show_progress=show)
        what = f'results in {args.out_dir} (summary.csv)'
    failed = [item for item in items if item.status != 'ok']
    print(f'\n{len(items) - len(failed)} of {len(items)} inputs done; '
          f'{what}')
    for item in failed:
        print(f'  skipped {item.path}: {item.error}', file=sys.stderr)
    return 1 if len(failed) == len(items) else 0


if __name__ == '__main__':
    sys.exit(main())
