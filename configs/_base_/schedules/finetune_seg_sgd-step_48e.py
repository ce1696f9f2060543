# Stage-3 fine-tuning of lung segmentation (DeepLab-V3). MUSCLE Sec. 2.3:
# "vanilla weight decay" and "step-based decay of learning rate", no numbers.
# Optimiser of mmseg's schedule_20k.py (SGD, lr 0.01 for a batch of 8,
# momentum 0.9, weight decay 5e-4); its poly decay is replaced by the
# paper's step decay with mmdet's 1x proportions (x0.1 at 8/12 and 11/12 of
# the run). mmseg's 20k iterations at batch 8 are ~220 epochs of the 718
# training images; 48 epochs (~4.3k iterations) suffice when fine-tuning.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    clip_grad=None)

param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=48,
        milestones=[32, 44],
        gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=48, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# lr above is for the batch of 8 of datasets/lung.py (mmseg's 4 GPUs x 2)
auto_scale_lr = dict(base_batch_size=8)
