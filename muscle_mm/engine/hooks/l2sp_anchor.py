# Copyright (c) muscle_mm contributors. All rights reserved.
"""w0 of L2-SP (Eq. 2): which parameters it covers and where it comes from."""
from typing import Dict

import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader


def select_params(backbone: nn.Module, params: str) -> Dict[str, nn.Parameter]:
    """Parameters of the distance term by name, trainable or not:
    conv / FC weights (``'weights'``, as L2-SP) or all (``'all'``)."""
    return {
        name: p
        for name, p in backbone.named_parameters()
        if params == 'all' or p.ndim >= 2
    }


def snapshot(selected: Dict[str, nn.Parameter]) -> Dict[str, torch.Tensor]:
    """The current values as the anchor."""
    return {n: p.detach().clone() for n, p in selected.items()}


def _match(saved: Dict[str, torch.Tensor],
           selected: Dict[str, nn.Parameter]) -> Dict[str, torch.Tensor]:
    return {
        n: saved[n].to(device=p.device, dtype=p.dtype)
        for n, p in selected.items()
    }


def load_anchor_ckpt(path: str, prefix: str,
                     selected: Dict[str, nn.Parameter]
                     ) -> Dict[str, torch.Tensor]:
    """The anchor from the backbone keys (under ``prefix``) of a
    checkpoint, e.g. the stage-1 weights."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    w0 = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing = sorted(set(selected) - set(w0))
    if missing:
        raise KeyError(
            f'L2SPHook: anchor_ckpt {path!r} lacks {len(missing)} backbone '
            f'weights under prefix {prefix!r}, e.g. {prefix}{missing[0]}. '
            'Check `anchor_prefix`.')
    return _match(w0, selected)


def restore_anchor(saved: Dict[str, torch.Tensor],
                   selected: Dict[str, nn.Parameter], key: str,
                   params: str) -> Dict[str, torch.Tensor]:
    """The anchor a resumed checkpoint kept under ``key``."""
    missing = sorted(set(selected) - set(saved))
    if missing:
        raise KeyError(
            f'L2SPHook: the checkpoint\'s {key!r} lacks {len(missing)} '
            f'anchors of the current backbone, e.g. {missing[0]}: was it '
            f'saved with another backbone or `params` setting (now '
            f'{params!r})?')
    return _match(saved, selected)
