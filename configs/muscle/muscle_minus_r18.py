# MUSCLE-- with ResNet-18 (Sec. 3, ablation): continual learning with the
# "Cyclic and Reshuffled Learning Schedule" and the "Cross-Task Memorization"
# turned off: fixed task order, constant learning rate, no L2-SP (so the
# optimizer's weight decay applies to the backbone again).
_base_ = ['./cl_r18.py']

train_cfg = dict(reshuffle=False)
param_scheduler = None
custom_hooks = []
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True))
