# MD-MoCo optimisation. MUSCLE (Sec. 2.1) gives none of these numbers, so
# they are MoCo v2's (Chen et al. 2020, arXiv:2003.04297, Sec. 3 / Table 1),
# as in mmpretrain's mocov2_resnet50_8xb32-coslr-200e_in1k.py.

# SGD, lr 0.03 for a global batch of 256, momentum 0.9, weight decay 1e-4
# (MoCo v2 / mmpretrain mocov2).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4))

# cosine decay over 200 epochs (MoCo v2 "cos" schedule, 200-epoch setting)
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=200, by_epoch=True, begin=0,
         end=200)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)

# `--auto-scale-lr` rescales lr linearly from MoCo v2's batch of 256
auto_scale_lr = dict(base_batch_size=256)
