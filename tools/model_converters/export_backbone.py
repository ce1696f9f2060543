# Copyright (c) muscle_mm contributors. All rights reserved.
"""Export the backbone of a stage-1 (MD-MoCo) or stage-2 checkpoint.

``--format openmmlab`` (default): keys keep ``backbone.``; load in any
mmpretrain, mmseg or mmdet config with::

    backbone=dict(..., init_cfg=dict(type='Pretrained',
                                     checkpoint='r18_mdmoco.pth',
                                     prefix='backbone.'))

``--format torchvision`` (old spelling ``--torchvision``)::

    m = torchvision.models.resnet18()
    m.load_state_dict(torch.load('r18_tv.pth'), strict=False)  # fc missing

``--format timm`` or ``hf``: dst is a folder, timm's hub layout
(``model.safetensors``, ``config.json`` with the X-ray mean/std/size,
``MODEL_CARD.md``, also as the hub's ``README.md``), which is what the
Hugging Face hub hosts::

    model = timm.create_model('local-dir:r18_mdmoco_timm', pretrained=True)
"""
import argparse
import sys
import warnings

from muscle_mm.metainfo import STAGE_BACKBONES
from muscle_mm.utils.checkpoint import KEY_ENCODER_PREFIX, QUERY_PREFIX
from muscle_mm.utils.export import FOLDER_FORMATS, FORMATS, export


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='training checkpoint (.pth)')
    parser.add_argument(
        'dst',
        help='output file (openmmlab, torchvision) or folder (timm, hf)')
    parser.add_argument(
        '--format',
        choices=FORMATS,
        default=None,
        help='what to write (default: openmmlab)')
    parser.add_argument(
        '--torchvision',
        action='store_true',
        help='deprecated spelling of --format torchvision')
    parser.add_argument(
        '--depth',
        type=int,
        default=None,
        help='ResNet depth (guessed from the blocks when omitted)')
    parser.add_argument(
        '--stage',
        choices=STAGE_BACKBONES,
        default=None,
        help='stage for the model card (read from the checkpoint\'s config '
        'when omitted)')
    parser.add_argument(
        '--config',
        default=None,
        help='training config for the model card (default: the one saved in '
        'the checkpoint)')
    parser.add_argument(
        '--report',
        nargs='+',
        default=(),
        help='evaluation tables for the model card: the study\'s report '
        'folder, or table .md/.json files')
    parser.add_argument(
        '--card',
        default=None,
        help='also write the model card (Markdown) here; the folder formats '
        'always write MODEL_CARD.md')
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--key-encoder',
        action='store_true',
        help=f'export the momentum encoder ("{KEY_ENCODER_PREFIX}") '
        f'instead of the query encoder ("{QUERY_PREFIX}")')
    group.add_argument(
        '--prefix',
        default=None,
        help='prefix of the backbone inside src (default: '
        f'"{QUERY_PREFIX}")')
    args = parser.parse_args()
    if args.torchvision:
        if args.format not in (None, 'torchvision'):
            parser.error(f'--torchvision contradicts --format {args.format}')
        warnings.warn('--torchvision is deprecated; use --format torchvision',
                      FutureWarning)
        args.format = 'torchvision'
    args.format = args.format or 'openmmlab'
    return args


def main() -> None:
    args = parse_args()
    prefix = args.prefix or (KEY_ENCODER_PREFIX
                             if args.key_encoder else QUERY_PREFIX)
    try:
        out = export(
            args.src,
            args.dst,
            args.format,
            source_prefix=prefix,
            depth=args.depth,
            stage=args.stage,
            config=args.config,
            report=args.report,
            card=args.card)
    except (FileNotFoundError, FileExistsError, IsADirectoryError, KeyError,
            ValueError) as e:
        sys.exit(f'export_backbone.py: error: {e}')
    n_params = sum(v.numel() for v in out.values())
    kind = dict(openmmlab='OpenMMLab (backbone.*)').get(
        args.format, args.format)
    what = 'folder' if args.format in FOLDER_FORMATS else 'file'
    print(f'{args.dst} ({what}): {len(out)} tensors, '
          f'{n_params / 1e6:.2f} M values, {kind} keys, from "{prefix}" of '
          f'{args.src}')


if __name__ == '__main__':
    main()
