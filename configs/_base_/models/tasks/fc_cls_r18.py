# Binary X-ray classifier of MUSCLE stage 2 (Sec. 2.2: "Fully-Connected (FC)
# Layer for classification tasks"): mmpretrain's ImageClassifier with a plain
# ResNet-18, global average pooling and one FC layer. Used by the Pneumonia
# and MURA tasks (both two classes). In a MultiTaskModel the backbone below is
# only the template the shared backbone is checked against.
# the paper's constants, read (not inherited): see ../../xray_constants.py
from mmengine import Config as __Config

__xray = __Config.fromfile('{{ fileDirname }}/../../xray_constants.py')

model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        # z-score of the grey level (MUSCLE Sec. 2.1)
        mean=__xray.xray_mean,
        std=__xray.xray_std,
        to_rgb=False,
        num_classes=2),
    backbone=dict(
        type='ResNet',
        depth=18,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=2,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
