# Scratch (MUSCLE Sec. 3): no pre-training. Kaiming's initialisation (He et
# al. 2015, the paper's [24]) of every convolution, BN weight 1 and bias 0.
_base_ = ['./_base_/pneumonia_r50.py']

model = dict(backbone=dict(init_cfg={{_base_.kaiming_init}}))
