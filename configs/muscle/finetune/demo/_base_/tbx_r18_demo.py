# Demo of stage 3 (MUSCLE Sec. 2.3): ../../_base_/tbx_r18.py's model,
# optimiser and metrics on the TBX11K miniature of data/demo at 128x80,
# 10 epochs, about a minute on 2 CPU cores. Prepare the data once:
#   python tools/misc/generate_demo_data.py --out data/demo
#   python tools/dataset_converters/make_splits.py --data-root data/demo
# The initialisations are ../tbx_r18_{scratch, imagenet, mdmoco,
# muscle_minus, muscle}_demo.py; they differ only in model.backbone.init_cfg.
_base_ = [
    '../../../../_base_/models/tasks/demo/tbx_faster-rcnn_r18_fpn_demo.py',
    '../../../../_base_/datasets/demo/tbx11k.py',
    '../../../../_base_/schedules/finetune_det_sgd-step_1x.py',
    '../../../../_base_/default_runtime.py',
]

# Faster R-CNN from Kaiming's init needs ~70 steps to find the demo's lesions
# (2 epochs of batch 2 left every mAP at 0, issue 13): 10 epochs of batch 4,
# LR 0.01 with gradient clipping (0.02 diverged), x0.1 for the last two.
max_epochs = 10
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10, norm_type=2))
# the task model's init_cfg=None (stage 2's shared backbone brings the
# weights) becomes an empty dict the initialisations merge into, as in
# ../../_base_/tbx_r18.py
# 50 proposals / 32 sampled RoIs (the stage-2 demo's 100 / 64 halved): a
# demo image holds 1-3 lesions, and the 10 epochs cost less
model = dict(
    backbone=dict(init_cfg=dict(_delete_=True)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=100, max_per_img=50),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50)))
# mmdet's 1x shape shrunk: a one-epoch warm-up (in epochs, so it is the
# same tenth of the run on any number of processes), x0.1 at 80%
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[8],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs))  # one checkpoint, at the end
# the demo's LR is used as is at its batch of 4 on one process
auto_scale_lr = dict(base_batch_size=4)
