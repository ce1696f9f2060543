# MUSCLE-- with ResNet-18 (Sec. 3, ablation): continual learning with the
# "Cyclic and Reshuffled Learning Schedule" and the "Cross-Task Memorization"
# turned off: fixed task order, constant learning rate, no L2-SP distance to
# w0. The optimizer, whose weight decay is Eq. 2's ridge term, stays MUSCLE's.
# Alias: muscle_minus_r18.py.
_base_ = ['./muscle_r18_1xb16-cyclic-10r_xray4.py']

train_cfg = dict(reshuffle=False)
param_scheduler = None
custom_hooks = []
