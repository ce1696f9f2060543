# The classification part of the stage-3 demos (MUSCLE Sec. 2.3): model,
# optimiser, schedule and runtime of ../../_base_/{pneumonia,mura}_r18.py at
# the demo scale; ./pneumonia_r18_demo.py and ./mura_r18_demo.py add their
# data.
_base_ = [
    '../../../../_base_/models/tasks/fc_cls_r18.py',
    '../../../../_base_/schedules/finetune_cls_sgd-step_30e.py',
    '../../../../_base_/default_runtime.py',
]

# 6 epochs of batch 8 at LR 0.01: at batch 2 (3 epochs, LR 0.00625) the
# BatchNorm statistics of two images made the loss jump to 3-8 and MURA
# stayed at chance (AUC 50) from Scratch (issue 13)
# (the batch is set in ./pneumonia_r18_demo.py, ./mura_r18_demo.py)
max_epochs = 6
optim_wrapper = dict(optimizer=dict(lr=0.01))
# mmpretrain's scope for the nested types and no residual zero-init, as
# ../../_base_/pneumonia_r18.py
model = dict(_scope_='mmpretrain', backbone=dict(zero_init_residual=False))

# the step decay of the full schedule, once, at two thirds
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[4],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs))  # one checkpoint, at the end
# the demo's LR is used as is at its batch of 8 on one process
auto_scale_lr = dict(base_batch_size=8)
