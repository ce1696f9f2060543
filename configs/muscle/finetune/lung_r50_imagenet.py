# ImageNet (MUSCLE Sec. 3): torchvision's ImageNet-1k ResNet-50, converted
# once to a local backbone checkpoint (docs/finetune.md); nothing is
# downloaded, a missing file fails saying how to make it.
_base_ = ['./_base_/lung_r50.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='imagenet',
            checkpoint='data/pretrained/resnet50_imagenet.pth',
            prefix='backbone.')))
