# lung_deeplabv3_r18.py with a plain ResNet-50 (mmseg's head widths).
_base_ = ['./lung_deeplabv3_r18.py']

model = dict(
    backbone=dict(depth=50),
    decode_head=dict(in_channels=2048, channels=512),
    auxiliary_head=dict(in_channels=1024, channels=256))
