# The classification part of the stage-3 demos (MUSCLE Sec. 2.3): model,
# optimiser, schedule and runtime of ../../_base_/{pneumonia,mura}_r18.py at
# the demo scale; ./pneumonia_r18_demo.py and ./mura_r18_demo.py add their
# data.
_base_ = [
    '../../../../_base_/models/tasks/fc_cls_r18.py',
    '../../../../_base_/schedules/finetune_cls_sgd-step_30e.py',
    '../../../../_base_/default_runtime.py',
]

max_epochs = 3
# mmpretrain's scope for the nested types and no residual zero-init, as
# ../../_base_/pneumonia_r18.py
model = dict(_scope_='mmpretrain', backbone=dict(zero_init_residual=False))

# the step decay of the full schedule, once, half-way
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[max_epochs // 2],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs))  # one checkpoint, at the end
# the demo's LR is used as is at its batch of 2 on one process
auto_scale_lr = dict(base_batch_size=2)
