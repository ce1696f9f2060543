# Stage-3 fine-tuning of the classification tasks (Pneumonia, MURA). MUSCLE
# Sec. 2.3 names "vanilla weight decay" and "step-based decay of learning
# rate" but no numbers, so the recipe is mmpretrain's ResNet one
# (schedules/imagenet_bs256.py: SGD, momentum 0.9, weight decay 1e-4, lr x0.1
# at epochs 30/60/90 of 100), shortened for fine-tuning.

# lr 0.1 for a batch of 256, scaled linearly (Goyal et al. 2017) to the
# batch of 16 of datasets/{pneumonia,mura}.py: 0.1 * 16 / 256
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.00625, momentum=0.9, weight_decay=1e-4))

# 30 epochs, x0.1 at the same fractions of the run as 30/60/90 of 100
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=30,
        milestones=[9, 18, 27],
        gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# `--auto-scale-lr` rescales lr from the batch it was set for
auto_scale_lr = dict(base_batch_size=16)
