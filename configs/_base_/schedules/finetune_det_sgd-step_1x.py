# Stage-3 fine-tuning of TB detection (Faster R-CNN). MUSCLE Sec. 2.3:
# "vanilla weight decay" and "step-based decay of learning rate", no numbers.
# This is mmdet's 1x schedule (mmdet _base_/schedules/schedule_1x.py: SGD,
# momentum 0.9, weight decay 1e-4, linear warm-up, x0.1 at epochs 8 and 11
# of 12), written out rather than inherited: an inherited `mmdet::`
# train_cfg would build our datasets in mmdet's scope.

# lr 0.02 for mmdet's batch of 16, scaled linearly (Goyal et al. 2017) to
# the batch of 4 of datasets/tbx11k.py: 0.02 * 4 / 16
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=1e-4))

# mmdet warms up for 500 iterations; on TBX's 640 training images at batch
# 4 that is 3 of the 12 epochs on one GPU but all 12 (240 iterations) on 8.
# Written in epochs, the warm-up is the same quarter of the run on any
# number of GPUs (480 iterations on one, 60 on eight).
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=12,
        milestones=[8, 11],
        gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# `--auto-scale-lr` rescales lr from the batch it was set for
auto_scale_lr = dict(enable=False, base_batch_size=4)
