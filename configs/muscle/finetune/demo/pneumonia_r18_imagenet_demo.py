# ImageNet (MUSCLE Sec. 3) on the demo data, as ../pneumonia_r18_imagenet.py:
# a local, converted torchvision checkpoint (docs/finetune.md).
_base_ = ['./_base_/pneumonia_r18_demo.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='imagenet',
            checkpoint='data/pretrained/resnet18_imagenet.pth',
            prefix='backbone.')))
