# Copyright (c) muscle_mm contributors. All rights reserved.
"""Convert a torchvision ResNet state dict to an OpenMMLab backbone checkpoint.

The ImageNet baseline of MUSCLE (Tables 2 and 3) starts from torchvision's
``resnet18``/``resnet50`` ``IMAGENET1K_V1`` weights. On a machine with
internet::

    python -c "import torch, torchvision; torch.save(torchvision.models.\
resnet18(weights='IMAGENET1K_V1').state_dict(), 'resnet18_torchvision.pth')"

then, offline::

    python tools/model_converters/torchvision_to_mmpretrain.py \\
        resnet18_torchvision.pth data/pretrained/resnet18_imagenet.pth

The output holds ``{'state_dict': {'backbone.*': ...}, 'meta': ...}``, the
layout of ``tools/model_converters/export_backbone.py``, loadable by the
plain ResNet of mmpretrain, mmseg and mmdet with ``init_cfg=dict(
type='LocalPretrained', checkpoint=..., prefix='backbone.')``. The names of a
plain ResNet coincide with torchvision's, so the mapping is the inverse of
``muscle_mm.utils.checkpoint.to_torchvision``: add ``backbone.``, drop the
ImageNet classifier ``fc.*``, and check every name and shape against
torchvision's model of that depth.
"""
import argparse
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional

import torch

from muscle_mm.utils.checkpoint import save_checkpoint_atomic, to_torchvision


def torchvision_to_mmpretrain(
        state_dict: Dict[str, torch.Tensor],
        depth: Optional[int] = None,
        prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Map torchvision ``resnet{depth}`` keys to ``prefix`` + ResNet keys.

    Args:
        state_dict (dict): torchvision ResNet state dict (``fc`` optional).
        depth (int, optional): 18, 34, 50, 101 or 152; guessed when omitted.
        prefix (str): Prefix of the output keys. Defaults to 'backbone.'.

    Returns:
        OrderedDict: ``prefix + key`` -> tensor, without ``fc.*``.

    Raises:
        KeyError: when a name or shape differs from torchvision's model.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'],
                                                 dict):
        state_dict = state_dict['state_dict']
    # a DataParallel-saved torchvision model
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    out = OrderedDict((prefix + k, v.detach().cpu().clone())
                      for k, v in state_dict.items()
                      if not k.startswith('fc.'))
    # to_torchvision checks names and shapes against torchvision's model
    to_torchvision(out, depth=depth, prefix=prefix)
    return out


def convert(src: str,
            dst: str,
            depth: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """Read ``src`` (torchvision), write ``dst`` (OpenMMLab backbone)."""
    if not osp.isfile(src):
        raise FileNotFoundError(f'torchvision state dict not found: {src}')
    state_dict = torch.load(src, map_location='cpu', weights_only=True)
    if not isinstance(state_dict, dict):
        raise TypeError(f'{src}: expected a state dict (torch.save(model.'
                        f'state_dict(), ...)), got '
                        f'{type(state_dict).__name__}.')
    out = torchvision_to_mmpretrain(state_dict, depth)
    meta = dict(source=osp.abspath(src), converter='torchvision_to_mmpretrain')
    save_checkpoint_atomic(dict(state_dict=out, meta=meta), dst)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='torchvision ResNet state dict (.pth)')
    parser.add_argument('dst', help='output backbone checkpoint (.pth)')
    parser.add_argument(
        '--depth',
        type=int,
        default=None,
        help='ResNet depth (guessed from the blocks when omitted)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = convert(args.src, args.dst, args.depth)
    n_values = sum(v.numel() for v in out.values())
    print(f'{args.dst}: {len(out)} tensors, {n_values / 1e6:.2f} M values, '
          f'OpenMMLab (backbone.*) keys, from {args.src}')


if __name__ == '__main__':
    main()
