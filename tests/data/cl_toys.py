# Copyright (c) muscle_mm contributors. All rights reserved.
"""Tiny multi-task continual-learning setups for the engine tests.

Toy datasets made in memory, a 1/8-width ResNet-18 under the project's task
model configs, and a third party's fifth task (bone-age regression: dataset,
head and metric defined here only, registered like a plugin would).
``make_cfg`` builds a CL config from them. Importable by DDP workers through
``custom_imports=dict(imports=['cl_toys'])`` (``tests/data`` on the path).
"""
import os.path as osp
import uuid

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModule

import muscle_mm.engine.loops  # noqa: F401 (registers the loops)
import muscle_mm.models.multitask  # noqa: F401 (registers MultiTaskModel)
from muscle_mm.registry import DATASETS, HOOKS, METRICS, MODELS
from muscle_mm.utils import register_all_modules

register_all_modules()
SIZE = 32
# ResNet-18 at 1/8 width (stage widths 8..64): the loop logic is the same and
# checkpoints are small, so the end-to-end runs stay fast on 2 CPU cores
WIDTH = dict(stem_channels=8, base_channels=8)


# ---------------------------------------------------------------- datasets
class _ToyDataset(BaseDataset):
    """``n`` random grey images (3 channels) of SIZE px, made in memory."""

    def __init__(self, n: int = 2, seed: int = 0, **kwargs) -> None:
        self.n, self.seed = n, seed
        super().__init__(serialize_data=False, **kwargs)

    def _image(self, rng):
        grey = rng.integers(0, 256, (SIZE, SIZE, 1), dtype=np.uint8)
        return np.repeat(grey, 3, axis=2)

    def load_data_list(self):
        rng = np.random.default_rng(self.seed)
        return [
            dict(
                img=self._image(rng),
                img_shape=(SIZE, SIZE),
                ori_shape=(SIZE, SIZE),
                **self.target(i, rng)) for i in range(self.n)
        ]


@DATASETS.register_module(force=True)
class ToyClsDataset(_ToyDataset):
    METAINFO = dict(classes=('normal', 'abnormal'))

    def target(self, i, rng):
        return dict(gt_label=i % 2)


@DATASETS.register_module(force=True)
class ToySegDataset(_ToyDataset):
    METAINFO = dict(classes=('background', 'lung'))

    def target(self, i, rng):
        return dict(
            gt_seg_map=rng.integers(0, 2, (SIZE, SIZE), dtype=np.uint8))


# ------------------------------------------- the third party's fifth task
@DATASETS.register_module(force=True)
class ToyBoneAgeDataset(_ToyDataset):
    """Bone age in months, as RSNA Bone Age labels it."""
    METAINFO = dict(classes=('bone_age', ))

    def target(self, i, rng):
        return dict(gt_age=float(rng.uniform(10, 200)))


@MODELS.register_module(force=True)
class BoneAgeRegressionHead(BaseModule):
    """Pooled features -> age in months; L1 loss on age / 100."""

    def __init__(self, in_channels: int = 512, scale: float = 100.) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, 1)
        self.scale = scale

    def _age(self, feats):
        return self.fc(feats[-1]).squeeze(1) * self.scale

    def loss(self, feats, data_samples):
        target = torch.tensor([float(s.gt_age) for s in data_samples])
        return dict(
            loss_age=F.l1_loss(
                self._age(feats) / self.scale, target / self.scale))

    def predict(self, feats, data_samples=None):
        for s, age in zip(data_samples, self._age(feats)):
            s.set_field(age.detach(), 'pred_age')
        return data_samples


@METRICS.register_module(force=True)
class BoneAgeMAE(BaseMetric):
    """Mean absolute error of the age, in months."""

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append(abs(float(s['pred_age']) - s['gt_age']))

    def compute_metrics(self, results):
        return dict(mae=float(np.mean(results)))


BONEAGE_MODEL = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[122.786] * 3,
        std=[18.390] * 3),
    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), **WIDTH),
    neck=dict(type='GlobalAveragePooling'),
    # the third party's head, named with its scope from inside mmpretrain
    head=dict(type='muscle_mm.BoneAgeRegressionHead', in_channels=64))


@HOOKS.register_module(force=True)
class InterruptAfterIterate(Hook):
    """Stops a run like a crash would, after a checkpoint was saved."""
    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, iterates: int) -> None:
        self.iterates = iterates

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.iterates:
            raise KeyboardInterrupt('simulated interruption')


# ------------------------------------------------------------------ config
def make_cfg(repo_root,
             work_dir,
             tasks=('cls', 'seg'),
             rounds=2,
             validate=False,
             matrix=None,
             **loop_kwargs) -> Config:
    task_dir = osp.join(repo_root, 'configs/_base_/models/tasks')
    # our task configs (inheriting mmseg's), narrowed like the backbone
    cls = Config.fromfile(osp.join(task_dir, 'fc_cls_r18.py')).model
    cls.backbone.update(WIDTH)
    cls.head.in_channels = 64
    seg = Config.fromfile(osp.join(task_dir, 'lung_deeplabv3_r18.py')).model
    seg.backbone.update(WIDTH)
    seg.decode_head.update(in_channels=64, channels=16)
    seg.auxiliary_head.update(in_channels=32, channels=8)
    all_models = dict(cls=cls, seg=seg, boneage=BONEAGE_MODEL)
    datasets = dict(
        cls=dict(
            type='ToyClsDataset',
            pipeline=[dict(type='mmpretrain.PackInputs')]),
        seg=dict(
            type='ToySegDataset', pipeline=[dict(type='mmseg.PackSegInputs')]),
        boneage=dict(
            type='ToyBoneAgeDataset',
            pipeline=[
                dict(type='mmpretrain.PackInputs', algorithm_keys=['gt_age'])
            ]))

    def loader(task, shuffle):
        return dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            dataset=datasets[task])

    cfg = dict(
        default_scope='muscle_mm',
        work_dir=str(work_dir),
        experiment_name=f'cl_test_{uuid.uuid4().hex[:8]}',
        model=dict(
            type='MultiTaskModel',
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=18,
                out_indices=(0, 1, 2, 3),
                **WIDTH),
            tasks={t: all_models[t]
                   for t in tasks}),
        train_dataloader={t: loader(t, True)
                          for t in tasks},
        train_cfg=dict(
            type='MultiTaskCLLoop',
            tasks=list(tasks),
            rounds=rounds,
            **loop_kwargs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(
            type='CosineAnnealingLR', by_epoch=False, T_max=100),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(type='MultiTaskLogProcessor'),
        randomness=dict(seed=0, deterministic=True),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')
    if validate:
        evaluators = dict(
            cls=dict(type='mmpretrain.Accuracy'),
            seg=dict(type='mmseg.IoUMetric', iou_metrics=['mIoU']),
            boneage=dict(type='BoneAgeMAE'))
        cfg.update(
            val_dataloader={t: loader(t, False)
                            for t in tasks},
            val_evaluator={t: evaluators[t]
                           for t in tasks},
            val_cfg=dict(type='MultiTaskValLoop'))
        cfg['default_hooks']['accuracy_matrix'] = dict(
            type='AccuracyMatrixHook', **(matrix or {}))
    return Config(cfg)


def final_weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}
