# Copyright (c) muscle_mm contributors. All rights reserved.
"""Backbone initialisation from a local checkpoint (MUSCLE Sec. 2.3, 3)."""
import os.path as osp
import re
from typing import Dict, Optional

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict

from muscle_mm.metainfo import INIT_NAMES
from muscle_mm.registry import WEIGHT_INITIALIZERS

#: Where each pre-trained initialisation of the paper comes from, for the
#: error raised when its file is missing. ``{name}`` (its printed name),
#: ``{depth}`` and ``{path}`` are filled in.
_SOURCES = {
    'imagenet':
    ('{name} ResNet-{depth} weights not found at {path}. This machine '
     'cannot download them. On a machine with internet run\n'
     '  python -c "import torch, torchvision; torch.save(torchvision.'
     "models.resnet{depth}(weights='IMAGENET1K_V1').state_dict(), "
     "'resnet{depth}_torchvision.pth')\"\n"
     'copy that file here and convert its keys to an OpenMMLab backbone '
     'checkpoint (offline):\n'
     '  python tools/model_converters/torchvision_to_mmpretrain.py '
     'resnet{depth}_torchvision.pth {path}\n'
     'or point the config at a converted file elsewhere with '
     '--cfg-options model.backbone.init_cfg.checkpoint=PATH.'),
    'mdmoco':
    ('{name} (stage 1) ResNet-{depth} backbone not found at {path}. '
     'Stage 1 of the study makes it (python tools/run_muscle.py writes '
     '<work dir>/backbones/r{depth}_mdmoco.pth); by hand:\n'
     '  python tools/train.py configs/muscle/mdmoco_r{depth}.py\n'
     '  python tools/model_converters/export_backbone.py '
     'work_dirs/mdmoco_r{depth}/epoch_200.pth {path}\n'
     'Another file: --cfg-options model.backbone.init_cfg.checkpoint=PATH.'),
    'muscle_minus':
    ('{name} (stage 2 without reshuffling, cyclic LR and L2-SP) '
     'ResNet-{depth} backbone not found at {path}. Stage 2 of the study '
     'makes it (python tools/run_muscle.py writes <work dir>/backbones/'
     'r{depth}_muscle_minus.pth); by hand:\n'
     '  python tools/train.py configs/muscle/muscle_minus_r{depth}.py\n'
     '  python tools/model_converters/export_backbone.py '
     'work_dirs/muscle_minus_r{depth}/epoch_40.pth {path}\n'
     'Another file: --cfg-options model.backbone.init_cfg.checkpoint=PATH.'),
    'muscle':
    ('{name} (stage 2) ResNet-{depth} backbone not found at {path}. Stage 2 '
     'of the study makes it (python tools/run_muscle.py writes <work dir>/'
     'backbones/r{depth}_muscle.pth); by hand:\n'
     '  python tools/train.py configs/muscle/cl_r{depth}.py\n'
     '  python tools/model_converters/export_backbone.py '
     'work_dirs/cl_r{depth}/epoch_40.pth {path}\n'
     'Another file: --cfg-options model.backbone.init_cfg.checkpoint=PATH.'),
}

_REMOTE = re.compile(r'^([a-z][a-z0-9+.-]*)://', re.IGNORECASE)


@WEIGHT_INITIALIZERS.register_module()
class LocalPretrained(PretrainedInit):
    """Load a backbone from a local checkpoint, never from the network.

    mmengine's ``Pretrained`` accepts URLs and ``torchvision://`` names and
    downloads them; these machines are offline, so this initializer takes
    local files only and, when the file is missing, raises an error saying
    which file belongs there and the commands that make it (``source``).
    Unlike ``Pretrained`` (``strict=False``) it also fails when a tensor of
    the module is absent from the checkpoint or has another shape: a
    baseline of Tables 2 and 3 silently left half-random would be wrong.
    Tensors of the checkpoint the module does not have (e.g. torchvision's
    ``fc``) are ignored.

    Args:
        checkpoint (str): Local path of the checkpoint.
        prefix (str, optional): Prefix of the module's keys inside the
            checkpoint, e.g. ``'backbone.'``. Defaults to None (bare keys).
        map_location (str): Defaults to 'cpu'.
        source (str, optional): What the file is, for the error message:
            a key of :data:`muscle_mm.metainfo.INITS` but ``'scratch'``.
            Defaults to None (a generic message).
        strict (bool): Require every tensor of the module, with its shape.
            Defaults to True.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu',
                 source: Optional[str] = None,
                 strict: bool = True) -> None:
        if source is not None and source not in _SOURCES:
            raise ValueError(f'LocalPretrained: source must be one of '
                             f'{sorted(_SOURCES)} or None, got {source!r}')
        if not isinstance(checkpoint, str) or not checkpoint:
            raise TypeError('LocalPretrained needs `checkpoint`, the path of '
                            f'a local .pth file; got {checkpoint!r}')
        if _REMOTE.match(checkpoint):
            raise ValueError(
                f'LocalPretrained: "{checkpoint}" is not a local file. This '
                'machine has no internet; download it elsewhere and give '
                'its local path.')
        if prefix and not prefix.endswith('.'):
            prefix += '.'
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        self.source = source
        self.strict = strict

    def missing_message(self, module: Optional[torch.nn.Module] = None) -> str:
        """The error text for a missing checkpoint file."""
        if self.source is None:
            return (f'Checkpoint not found at {self.checkpoint}; give the '
                    'path of a local file with --cfg-options '
                    'model.backbone.init_cfg.checkpoint=PATH.')
        depth = getattr(module, 'depth', None)
        return _SOURCES[self.source].format(
            name=INIT_NAMES[self.source],
            depth=depth if depth is not None else '<depth>',
            path=self.checkpoint)

    def _state_dict(self) -> Dict[str, torch.Tensor]:
        checkpoint = _load_checkpoint(
            self.checkpoint, map_location=self.map_location)
        state_dict = checkpoint.get('state_dict', checkpoint) \
            if isinstance(checkpoint, dict) else None
        if not isinstance(state_dict, dict):
            raise TypeError(f'{self.checkpoint}: expected a state dict, got '
                            f'{type(checkpoint).__name__}.')
        if not self.prefix:
            return state_dict
        selected = {
            k[len(self.prefix):]: v
            for k, v in state_dict.items() if k.startswith(self.prefix)
        }
        if not selected:
            found = sorted({k.split('.')[0] + '.' for k in state_dict})
            hint = (' It looks like a bare torchvision state dict: convert '
                    'it with python tools/model_converters/'
                    'torchvision_to_mmpretrain.py IN OUT.'
                    if 'conv1.weight' in state_dict else '')
            raise KeyError(f'{self.checkpoint}: no key starts with '
                           f'"{self.prefix}"; top-level prefixes found: '
                           f'{found[:10]}.{hint}')
        return selected

    def __call__(self, module: torch.nn.Module) -> None:
        if not osp.isfile(self.checkpoint):
            raise FileNotFoundError(self.missing_message(module))
        print_log(
            f'load {self.prefix or "all keys"} of {self.checkpoint} into '
            f'{type(module).__name__}',
            logger='current')
        state_dict = self._state_dict()
        if self.strict:
            own = module.state_dict()
            missing = sorted(set(own) - set(state_dict))
            shapes = [
                f'{k}: {tuple(state_dict[k].shape)} in the checkpoint vs '
                f'{tuple(v.shape)} in the model' for k, v in own.items()
                if k in state_dict and state_dict[k].shape != v.shape
            ]
            if missing or shapes:
                raise KeyError(
                    f'{self.checkpoint} does not fit '
                    f'{type(module).__name__}'
                    f'(depth={getattr(module, "depth", "?")}): '
                    f'{len(missing)} missing tensors {missing[:5]}, '
                    f'{len(shapes)} shape mismatches {shapes[:3]}. Is it '
                    'the checkpoint of another depth or architecture?')
        load_state_dict(module, state_dict, strict=False, logger='current')
        self._keep_loaded(module)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _keep_loaded(self, module: torch.nn.Module) -> None:
        """Stop later steps of ``init_weights()`` from overwriting the load.

        mmengine applies only ``type='Pretrained'`` after the sub-modules'
        own initialisation; any other initializer runs first. And
        mmpretrain's ``ResNet`` zeroes the last BN of every residual block
        (``zero_init_residual``) unless its init type is literally
        ``'Pretrained'``. Both would silently alter a backbone loaded here.
        """
        if getattr(module, 'zero_init_residual', False):
            module.zero_init_residual = False
        if self.strict:  # every tensor was loaded: nothing is left to init
            for sub in module.modules():
                if sub is not module and hasattr(sub, '_is_init'):
                    sub._is_init = True

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint}'
