# Lung segmentation of MUSCLE stage 2 (Sec. 2.2: DeepLab-V3): mmseg's shipped
# DeepLabV3 config with a plain (not V1c deep-stem) ResNet-18, kept dilated as
# mmseg has it (strides (1, 2, 1, 1), dilations (1, 1, 2, 4), output stride
# 8). In a MultiTaskModel the shared backbone runs with this geometry for this
# task (muscle_mm.models.multitask.conv_geometry). Heads sized as mmseg's
# deeplabv3_r18-d8 configs; two classes (background, lung).
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py']
# the paper's constants, read (not inherited): see ../../xray_constants.py
from mmengine import Config as __Config

__xray = __Config.fromfile('{{ fileDirname }}/../../xray_constants.py')

# BN: runs on CPU and one GPU; for multi-GPU runs set `sync_bn='torch'` in
# the training config (mmengine converts the layers).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=__xray.xray_mean,  # MUSCLE Sec. 2.1
    std=__xray.xray_std,
    bgr_to_rgb=False,
    # training batches are padded to a multiple of 32 (mmseg needs `size` or
    # `size_divisor`; a fixed `size` needs `size_divisor=None`)
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # weights come from the shared backbone
    backbone=dict(type='ResNet', depth=18, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=512, channels=128, num_classes=2, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=256, channels=64, num_classes=2, norm_cfg=norm_cfg))
