# Copyright (c) muscle_mm contributors. All rights reserved.
"""Export the backbone of a stage-1 (MD-MoCo) or stage-2 checkpoint.

OpenMMLab (default): keys keep ``backbone.``; load in any mmpretrain, mmseg
or mmdet config with::

    backbone=dict(..., init_cfg=dict(type='Pretrained',
                                     checkpoint='r18_mdmoco.pth',
                                     prefix='backbone.'))

torchvision (``--torchvision``)::

    m = torchvision.models.resnet18()
    m.load_state_dict(torch.load('r18_tv.pth'), strict=False)  # fc missing
"""
import argparse

from muscle_mm.utils.checkpoint import (KEY_ENCODER_PREFIX, QUERY_PREFIX,
                                        export_backbone)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='training checkpoint (.pth)')
    parser.add_argument('dst', help='output backbone checkpoint (.pth)')
    parser.add_argument(
        '--torchvision',
        action='store_true',
        help='write torchvision resnet keys instead of "backbone.*"')
    parser.add_argument(
        '--depth',
        type=int,
        default=None,
        help='ResNet depth for --torchvision (guessed when omitted)')
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
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    prefix = args.prefix or (KEY_ENCODER_PREFIX
                             if args.key_encoder else QUERY_PREFIX)
    out = export_backbone(
        args.src,
        args.dst,
        source_prefix=prefix,
        torchvision=args.torchvision,
        depth=args.depth)
    n_params = sum(v.numel() for v in out.values())
    kind = 'torchvision' if args.torchvision else 'OpenMMLab (backbone.*)'
    print(f'{args.dst}: {len(out)} tensors, {n_params / 1e6:.2f} M values, '
          f'{kind} keys, from "{prefix}" of {args.src}')


if __name__ == '__main__':
    main()
