# The FC classifier of fc_cls_r18.py with a ResNet-50.
_base_ = ['./fc_cls_r18.py']

model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
