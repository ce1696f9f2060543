# MD-MoCo with ResNet-50: the ResNet-18 recipe, wider backbone and neck
# (the same change as ../_base_/models/mdmoco_r50.py makes).
_base_ = ['./mdmoco_r18_8xb32-coslr-200e_xray9.py']

model = dict(
    backbone=dict(depth=50),
    neck=dict(in_channels=2048, hid_channels=2048))
