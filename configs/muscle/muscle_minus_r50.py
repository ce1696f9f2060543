# MUSCLE-- with ResNet-50 (see muscle_minus_r18.py).
_base_ = ['./cl_r50.py']

train_cfg = dict(reshuffle=False)
param_scheduler = None
custom_hooks = []
