# MD-MoCo with ResNet-50: the ResNet-18 model, wider features.
_base_ = ['./mdmoco_r18.py']

model = dict(
    backbone=dict(depth=50),
    # hidden width 2048 as in mmpretrain's mocov2_resnet50
    neck=dict(in_channels=2048, hid_channels=2048))
