# TB detection of MUSCLE stage 2 (Sec. 2.2: FasterRCNN): mmdet's shipped
# Faster R-CNN + FPN config with a plain, undilated ResNet-18 and the two
# TBX11K classes (active TB, latent TB).
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py']
# the paper's constants, read (not inherited): see ../../xray_constants.py
from mmengine import Config as __Config

__xray = __Config.fromfile('{{ fileDirname }}/../../xray_constants.py')

model = dict(
    data_preprocessor=dict(
        mean=__xray.xray_mean,  # MUSCLE Sec. 2.1
        std=__xray.xray_std,
        bgr_to_rgb=False),
    backbone=dict(
        depth=18,
        frozen_stages=-1,  # the whole shared backbone is trained in CL
        norm_eval=False,
        init_cfg=None),  # weights come from the shared backbone
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=2)))
