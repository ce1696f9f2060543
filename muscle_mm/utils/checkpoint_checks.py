# Copyright (c) muscle_mm contributors. All rights reserved.
"""Check that a checkpoint is the model's before testing with it.

mmengine's runner loads ``load_from`` with ``strict=False``: a checkpoint of
another task or architecture only logs a warning, and the test then scores a
randomly initialised head (issue 13, item 1).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint

#: The runner's default ``revise_keys``: a DDP wrapper's ``module.``.
REVISE_KEYS = ((r'^module\.', ''), )


class CheckpointMismatchError(RuntimeError):
    """The checkpoint lacks tensors of the model, or has them in another
    shape."""


def _listed(keys: Sequence[str], num: int = 5) -> str:
    shown = ', '.join(keys[:num])
    return f'{shown}, ...' if len(keys) > num else shown


def checkpoint_state_dict(
    path: str,
    revise_keys: Sequence[Tuple[str, str]] = REVISE_KEYS
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The state dict of checkpoint ``path`` as the runner would load it, and
    the checkpoint's ``meta``."""
    checkpoint = _load_checkpoint(path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'{path} holds a {type(checkpoint).__name__}, not a checkpoint '
            'dict; pass the .pth that tools/train.py wrote.')
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, repl in revise_keys:
        state_dict = {re.sub(pattern, repl, k): v
                      for k, v in state_dict.items()}
    meta = checkpoint.get('meta')
    return state_dict, meta if isinstance(meta, dict) else {}


def check_checkpoint_fits(
        model: torch.nn.Module,
        path: str,
        revise_keys: Sequence[Tuple[str, str]] = REVISE_KEYS) -> None:
    """Raise unless checkpoint ``path`` has every tensor of ``model``.

    Tensors of the checkpoint that the model lacks only warn: the model is
    then fully loaded. Missing tensors and shape mismatches raise, listing
    the first few of each (and the unexpected ones) with their counts.

    Args:
        model (torch.nn.Module): The model to be tested (a wrapper is
            unwrapped, as ``Runner.load_checkpoint`` does).
        path (str): The checkpoint file.
        revise_keys (Sequence[tuple]): ``(pattern, replacement)`` applied to
            the checkpoint's keys. Defaults to stripping ``module.``.

    Raises:
        CheckpointMismatchError: The checkpoint does not fit the model.
    """
    state_dict, meta = checkpoint_state_dict(path, revise_keys)
    check_state_dict_fits(model, state_dict, path, meta)


def check_state_dict_fits(model: torch.nn.Module,
                          state_dict: Dict[str, torch.Tensor],
                          path: str,
                          meta: Optional[dict] = None) -> None:
    """:func:`check_checkpoint_fits` for a state dict already read from
    ``path`` (named in the messages; ``meta`` names the run that saved it)."""
    if is_model_wrapper(model):
        model = model.module
    meta = meta or {}
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f'{k} {tuple(state_dict[k].shape)} in the file vs '
        f'{tuple(v.shape)} in the model' for k, v in own.items()
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    name = type(model).__name__
    if not missing and not shapes:
        if unexpected:
            print_log(
                f'{path}: {len(unexpected)} tensors that {name} does not '
                f'have are ignored ({_listed(unexpected)}).',
                logger='current',
                level=30)
        return
    run = meta.get('experiment_name')
    saved_by = f' (saved by the run {run!r})' if run else ''
    parts: List[str] = [
        f'{len(missing)} of the {len(own)} tensors of {name} are missing '
        f'from it ({_listed(missing)})' if missing else '',
        f'{len(unexpected)} of its {len(state_dict)} tensors are not in the '
        f'model ({_listed(unexpected)})' if unexpected else '',
        f'{len(shapes)} have another shape ({_listed(shapes, 3)})'
        if shapes else '',
    ]
    raise CheckpointMismatchError(
        f'Checkpoint {path}{saved_by} does not fit the {name} of this '
        f'config: {"; ".join(p for p in parts if p)}. Testing it would score '
        'randomly initialised layers. Is it the checkpoint of another task, '
        'backbone or architecture, or a backbone-only export (those are for '
        'init_cfg, not for testing)? Pass the .pth that tools/train.py wrote '
        'for this config.')
