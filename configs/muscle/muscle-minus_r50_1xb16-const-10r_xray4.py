# MUSCLE-- with ResNet-50 (see muscle_minus_r18.py).
# Alias: muscle_minus_r50.py.
_base_ = ['./muscle_r50_1xb16-cyclic-10r_xray4.py']

train_cfg = dict(reshuffle=False)
param_scheduler = None
custom_hooks = []
