# Copyright (c) muscle_mm contributors. All rights reserved.
"""Turn a training checkpoint into a backbone-only checkpoint.

The output keeps the ``backbone.`` prefix, so every OpenMMLab model loads it
with ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
on its backbone (mmpretrain ``ImageClassifier``, mmseg ``EncoderDecoder``,
mmdet ``FasterRCNN``). A plain ``ResNet`` names its tensors like torchvision's
``resnet18``/``resnet50`` (``conv1``, ``bn1``, ``layerX.Y.downsample.0``), so
the torchvision export only strips the prefix and checks names and shapes
against torchvision's model.
"""
import io
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional

import torch

from .fileio import atomic_write

#: Where the query encoder of mmpretrain's MoCo keeps the backbone
#: (``backbone.``) and where its momentum copy does (``encoder_k.module.0.``).
QUERY_PREFIX = 'backbone.'
KEY_ENCODER_PREFIX = 'encoder_k.module.0.'


def _state_dict_of(checkpoint: dict, path: str) -> Dict[str, torch.Tensor]:
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path}: expected a checkpoint dict, got '
                        f'{type(checkpoint).__name__}.')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise TypeError(f'{path}: "state_dict" is a '
                        f'{type(state_dict).__name__}, expected a dict.')
    return state_dict


def extract_backbone(state_dict: Dict[str, torch.Tensor],
                     source_prefix: str = QUERY_PREFIX,
                     target_prefix: str = 'backbone.',
                     source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Select the backbone tensors of a full model's state dict.

    Args:
        state_dict (dict): State dict of the whole model (for ``XrayMoCo``:
            backbone, neck, key encoder, queue).
        source_prefix (str): Prefix of the backbone in ``state_dict``.
            Defaults to the query encoder, ``'backbone.'``.
        target_prefix (str): Prefix to write, ``''`` for bare keys.
            Defaults to ``'backbone.'``.
        source (str): Name of the checkpoint, used in error messages.

    Returns:
        OrderedDict: ``target_prefix + key`` -> tensor (detached, on CPU).
    """
    # strip a DDP wrapper's 'module.' if the weights were saved from one
    if not any(k.startswith(source_prefix) for k in state_dict) and all(
            k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(source_prefix):
            out[target_prefix + key[len(source_prefix):]] = \
                value.detach().cpu().clone()
    if not out:
        prefixes = sorted({k.split('.')[0] + '.' for k in state_dict})
        raise KeyError(
            f'{source}: no key starts with "{source_prefix}". Top-level '
            f'prefixes found: {prefixes}. Pass the prefix of the backbone '
            f'(e.g. "{QUERY_PREFIX}" for the MoCo query encoder or '
            f'"{KEY_ENCODER_PREFIX}" for its momentum encoder).')
    return out


def to_torchvision(backbone: Dict[str, torch.Tensor],
                   depth: Optional[int] = None,
                   prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Map plain mmpretrain/mmseg/mmdet ResNet keys to torchvision's ResNet.

    The names coincide, so this strips ``prefix`` and then verifies every
    name and shape against ``torchvision.models.resnet{depth}`` (only its
    ``fc`` classifier stays missing). ``ResNetV1c/V1d`` stems do not map.

    Args:
        backbone (dict): Backbone state dict, keys with ``prefix``.
        depth (int, optional): 18, 34, 50, 101 or 152; guessed from the
            number of blocks when omitted.
        prefix (str): Prefix to strip. Defaults to ``'backbone.'``.

    Returns:
        OrderedDict: torchvision key -> tensor, loadable with
        ``model.load_state_dict(sd, strict=False)`` (missing: ``fc.*``).
    """
    import torchvision

    bare = OrderedDict((k[len(prefix):], v) for k, v in backbone.items()
                       if k.startswith(prefix))
    if any(k.startswith('stem.') for k in bare):
        raise KeyError('The backbone has a deep stem (ResNetV1c/V1d keys '
                       '"stem.*"); torchvision ResNets have a single '
                       '"conv1". Pre-train with a plain ResNet.')
    if depth is None:
        depth = _guess_depth(bare)
    if depth not in (18, 34, 50, 101, 152):
        raise ValueError(f'torchvision has ResNet-18/34/50/101/152, '
                         f'got depth={depth}.')
    with torch.device('meta'):  # names and shapes only: no init cost
        reference = getattr(torchvision.models,
                            f'resnet{depth}')().state_dict()
    unexpected = sorted(set(bare) - set(reference))
    missing = sorted(set(reference) - set(bare) - {'fc.weight', 'fc.bias'})
    wrong_shape = [
        f'{k}: {tuple(v.shape)} vs torchvision {tuple(reference[k].shape)}'
        for k, v in bare.items()
        if k in reference and v.shape != reference[k].shape
    ]
    if unexpected or missing or wrong_shape:
        raise KeyError(
            f'The backbone does not match torchvision resnet{depth}: '
            f'unexpected keys {unexpected[:5]}, missing keys {missing[:5]}, '
            f'shape mismatches {wrong_shape[:5]} (first 5 of each).')
    return bare


def _guess_depth(bare: Dict[str, torch.Tensor]) -> int:
    blocks = tuple(
        len({k.split('.')[1]
             for k in bare if k.startswith(f'layer{i}.')})
        for i in range(1, 5))
    bottleneck = any(k.endswith('conv3.weight') for k in bare)
    table = {
        ((2, 2, 2, 2), False): 18,
        ((3, 4, 6, 3), False): 34,
        ((3, 4, 6, 3), True): 50,
        ((3, 4, 23, 3), True): 101,
        ((3, 8, 36, 3), True): 152,
    }
    if (blocks, bottleneck) not in table:
        raise ValueError(f'Cannot tell the ResNet depth from blocks per '
                         f'stage {blocks} (bottleneck={bottleneck}); '
                         f'pass depth explicitly.')
    return table[(blocks, bottleneck)]


def save_checkpoint_atomic(obj: dict, path: str) -> None:
    """``torch.save`` so that a crash never leaves a half-written ``path``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(buffer.getvalue(), path)


def export_backbone(src: str,
                    dst: str,
                    source_prefix: str = QUERY_PREFIX,
                    torchvision: bool = False,
                    depth: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """Write the backbone of checkpoint ``src`` to ``dst``.

    Args:
        src (str): A stage-1 (``XrayMoCo``) or any mmengine checkpoint.
        dst (str): Output path. OpenMMLab mode writes
            ``{'state_dict': {'backbone.*': ...}, 'meta': ...}``;
            torchvision mode writes a bare torchvision state dict.
        source_prefix (str): Prefix of the backbone inside ``src``.
        torchvision (bool): Write torchvision ``resnet{depth}`` keys.
        depth (int, optional): ResNet depth for torchvision mode.

    Returns:
        dict: The state dict that was written.
    """
    if not osp.isfile(src):
        raise FileNotFoundError(f'Checkpoint not found: {src}')
    checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    state_dict = _state_dict_of(checkpoint, src)
    backbone = extract_backbone(state_dict, source_prefix, source=src)
    meta = dict(
        source=osp.abspath(src),
        source_prefix=source_prefix,
        source_meta={
            k: checkpoint.get('meta', {}).get(k)
            for k in ('epoch', 'iter', 'seed', 'experiment_name',
                      'backbone_bn')
        } if isinstance(checkpoint.get('meta'), dict) else None)
    if torchvision:
        out = to_torchvision(backbone, depth)
        save_checkpoint_atomic(out, dst)
    else:
        out = backbone
        save_checkpoint_atomic(dict(state_dict=out, meta=meta), dst)
    return out
