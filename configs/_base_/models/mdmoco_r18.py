# MD-MoCo model (MUSCLE Sec. 2.1): MoCo v2 with a plain ResNet-18.
# Pixel statistics come from the paper's constants, defined once.
_base_ = ['../xray_constants.py']

model = dict(
    type='XrayMoCo',
    # 65536 negatives: MoCo v2 / mmpretrain mocov2 (K=65536); must be a
    # multiple of the global batch (checked at the first step)
    queue_len=65536,
    feat_dim=128,  # MoCo v2 projection dimension
    # mmengine EMA convention: 0.001 here is the MoCo paper's m=0.999
    momentum=0.001,
    data_preprocessor=dict(
        type='mmpretrain.SelfSupDataPreprocessor',
        # z-score of the grey level (MUSCLE Sec. 2.1)
        mean={{_base_.xray_mean}},
        std={{_base_.xray_std}},
        to_rgb=False),  # grey replicated to 3 channels: nothing to swap
    backbone=dict(
        # plain ResNet (not ResNetV1c): its keys load unchanged into
        # mmpretrain, mmseg and mmdet ResNets and into torchvision
        type='mmpretrain.ResNet',
        depth=18,
        norm_cfg=dict(type='BN'),
        zero_init_residual=False,  # as mmpretrain mocov2
        # Kaiming init of every convolution (MUSCLE Sec. 2.1)
        init_cfg={{_base_.kaiming_init}}),
    neck=dict(
        # MoCo v2 MLP head: fc-ReLU-fc, hidden width = backbone width
        type='mmpretrain.MoCoV2Neck',
        in_channels=512,
        hid_channels=512,
        out_channels=128,
        with_avg_pool=True),
    head=dict(
        type='mmpretrain.ContrastiveHead',
        loss=dict(type='mmpretrain.CrossEntropyLoss'),
        temperature=0.2))  # MoCo v2: tau=0.2
