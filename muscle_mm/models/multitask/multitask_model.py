# Copyright (c) muscle_mm contributors. All rights reserved.
import copy
import os.path as osp
from typing import ContextManager, Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseModel, ModuleDict

from muscle_mm.registry import MODELS
from .conv_geometry import geometry_diff, switched_geometry


def build_task_model(cfg: Union[dict, str]) -> BaseModel:
    """Build a task model in its own library's scope.

    ``cfg`` is a model config, or the path of a config file whose ``model``
    is used (so a task config can inherit the configs shipped with mmseg or
    mmdet, which several ``_base_`` files of one config could not: they all
    define ``model``).

    ``type='mmseg.EncoderDecoder'`` becomes ``_scope_='mmseg'``, so the
    unprefixed types inside mmseg's stock config (``'ASPPHead'``, ``'BN'``...)
    resolve in mmseg and not in the ``muscle`` default scope. The prefix
    wins over a ``_scope_`` the model inherited: mmengine gives the models
    of ``muscle_mm::`` base configs ``_scope_='muscle_mm'``.
    """
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise FileNotFoundError(f'Task model config file "{cfg}" does '
                                    'not exist.')
        file_cfg = Config.fromfile(cfg)
        if 'model' not in file_cfg:
            raise KeyError(f'Task model config file "{cfg}" has no `model`.')
        cfg = file_cfg.model
    cfg = copy.deepcopy(cfg)
    model_type = cfg.get('type')
    if isinstance(model_type, str) and '.' in model_type:
        cfg['_scope_'], cfg['type'] = model_type.split('.', 1)
    return MODELS.build(cfg)


@MODELS.register_module()
class MultiTaskModel(BaseModel):
    """One shared backbone and several native task models (MUSCLE Sec. 2.2).

    Every task model is built by its own library from its stock config
    (``mmpretrain.ImageClassifier``, ``mmseg.EncoderDecoder``,
    ``mmdet.FasterRCNN``...). Its own backbone is then checked against the
    shared one (same parameter names and shapes, so the heads' channels fit)
    and replaced by it: ``tasks[name].backbone is model.backbone``.

    The replacement is kept out of the task models' module trees (it is a
    plain attribute there), so ``state_dict()`` holds the backbone once, under
    ``backbone.``, which is also the key prefix stage 3 loads from.

    Convolution geometry: a task whose stock backbone is dilated (mmseg's
    DeepLabV3: strides (1, 2, 1, 1), dilations (1, 1, 2, 4)) runs the shared
    weights with its own stock backbone's stride/padding/dilation switched on
    during its forward pass (see :mod:`.conv_geometry`); other tasks run the
    plain geometry. The same weights thus serve output stride 8 and 32.

    Calls go to the active task: ``forward`` (hence ``train_step``,
    ``val_step``, ``test_step``, also under DDP) applies the task's own data
    preprocessor and returns its own losses or predictions. The model's own
    ``data_preprocessor`` only moves data to the device. Loss keys are
    prefixed with the task name (``'lung.loss_ce'``) so each task's curve is
    logged apart.

    Args:
        backbone (dict): Config of the shared backbone, e.g.
            ``dict(type='mmpretrain.ResNet', depth=18, out_indices=(0, 1, 2,
            3))``. Initialise it from a stage-1 checkpoint with
            ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=
            'backbone.')``.
        tasks (dict): Task name -> config of a native model that has a
            ``backbone``, or the path of a config file defining that
            ``model``. The order is the default task order.
        active_task (str, optional): Initially active task. Defaults to the
            first one.
        data_preprocessor (dict, optional): Defaults to
            ``BaseDataPreprocessor`` (device transfer only).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 tasks: Dict[str, dict],
                 active_task: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor
            or dict(type='BaseDataPreprocessor'),
            init_cfg=init_cfg)
        if not isinstance(tasks, dict) or not tasks:
            raise ValueError('MultiTaskModel: `tasks` must be a non-empty '
                             'dict of task name -> model config, got '
                             f'{tasks!r}.')
        self.backbone = MODELS.build(backbone)
        # mmengine's ModuleDict, not torch's: BaseModule.init_weights only
        # descends into children that have init_weights, so a torch ModuleDict
        # would leave every head with torch's default initialisation
        self.tasks = ModuleDict()
        self._geometry = {}
        for name, cfg in tasks.items():
            self._add_task(name, cfg)
        self._active_task = next(iter(self.tasks))
        if active_task is not None:
            self.active_task = active_task

    def _add_task(self, name: str, cfg: Union[dict, str]) -> None:
        if 'loss' in name or '.' in name:
            raise ValueError(f'MultiTaskModel: task name "{name}" may not '
                             'contain "loss" or "." (its loss keys are '
                             'prefixed with it).')
        model = build_task_model(cfg)
        own = getattr(model, 'backbone', None)
        if not isinstance(own, nn.Module):
            raise TypeError(f'MultiTaskModel: the model of task "{name}" '
                            f'({type(model).__name__}) has no `backbone` '
                            'module to share.')
        self._check_same_params(name, own)
        self._geometry[name] = geometry_diff(self.backbone, own)
        # Drop the task's own backbone from its module tree and point to the
        # shared one with a plain attribute: no duplicate in state_dict(),
        # parameters() or the optimizer.
        del model.backbone
        object.__setattr__(model, 'backbone', self.backbone)
        self.tasks[name] = model

    def _check_same_params(self, name: str, own: nn.Module) -> None:
        shared = {k: v.shape for k, v in self.backbone.state_dict().items()}
        theirs = {k: v.shape for k, v in own.state_dict().items()}
        if shared == theirs:
            return
        only_shared = sorted(set(shared) - set(theirs))[:3]
        only_theirs = sorted(set(theirs) - set(shared))[:3]
        shapes = [
            f'{k}: {tuple(shared[k])} vs {tuple(theirs[k])}'
            for k in sorted(set(shared) & set(theirs))
            if shared[k] != theirs[k]
        ][:3]
        raise ValueError(
            f'MultiTaskModel: the backbone in the config of task "{name}" '
            f'({type(own).__name__}) does not match the shared backbone '
            f'({type(self.backbone).__name__}); set its depth/stages like '
            'the shared one so its head gets the right channels. Only in '
            f'shared: {only_shared}; only in task: {only_theirs}; shapes: '
            f'{shapes}.')

    @property
    def task_names(self) -> List[str]:
        return list(self.tasks.keys())

    @property
    def active_task(self) -> str:
        """Name of the task that ``forward`` and the steps run."""
        return self._active_task

    @active_task.setter
    def active_task(self, name: str) -> None:
        if name not in self.tasks:
            raise KeyError(f'MultiTaskModel: unknown task "{name}"; the '
                           f'model has tasks {self.task_names}.')
        self._active_task = name

    def task_geometry(self, name: str) -> ContextManager:
        """A ``with`` block in which ``backbone`` runs with task ``name``'s
        convolution geometry, as ``forward`` runs it for the active task
        (e.g. the lung task's dilated, output-stride-8 features)."""
        if name not in self.tasks:
            raise KeyError(f'MultiTaskModel: unknown task "{name}"; the '
                           f'model has tasks {self.task_names}.')
        return switched_geometry(self.backbone, self._geometry[name])

    def forward(self,
                inputs: Union[torch.Tensor, list],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """Run the active task model on a batch, with its own preprocessor."""
        name = self._active_task
        task = self.tasks[name]
        data = task.data_preprocessor(
            dict(inputs=inputs, data_samples=data_samples), self.training)
        with self.task_geometry(name):
            outputs = task(**data, mode=mode)
        if mode == 'loss':
            outputs = {f'{name}.{k}': v for k, v in outputs.items()}
        return outputs
