# Scratch (MUSCLE Sec. 3): no pre-training. Kaiming's initialisation (He et
# al. 2015, the paper's [24]) of every convolution, BN weight 1 and bias 0.
_base_ = ['./_base_/lung_r50.py']

model = dict(
    backbone=dict(init_cfg=[
        dict(
            type='Kaiming',
            layer='Conv2d',
            mode='fan_out',
            nonlinearity='relu',
            distribution='normal'),
        dict(
            type='Constant', val=1, bias=0, layer=['_BatchNorm', 'GroupNorm'])
    ]))
