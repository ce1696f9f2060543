# tbx_faster-rcnn_r18_fpn.py with a ResNet-50.
_base_ = ['./tbx_faster-rcnn_r18_fpn.py']

model = dict(
    backbone=dict(depth=50), neck=dict(in_channels=[256, 512, 1024, 2048]))
