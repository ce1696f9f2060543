# Demo of stage 3 (MUSCLE Sec. 2.3): ../../_base_/lung_r18.py's model,
# optimiser and metrics on the lung-mask miniature of data/demo at 128x80,
# 4 epochs, well under a minute on 2 CPU cores. Prepare the data once:
#   python tools/misc/generate_demo_data.py --out data/demo
#   python tools/dataset_converters/make_splits.py --data-root data/demo
# The initialisations are ../lung_r18_{scratch, imagenet, mdmoco,
# muscle_minus, muscle}_demo.py; they differ only in model.backbone.init_cfg.
_base_ = [
    '../../../../_base_/models/tasks/lung_deeplabv3_r18.py',
    '../../../../_base_/datasets/demo/lung.py',
    '../../../../_base_/schedules/finetune_seg_sgd-step_48e.py',
    '../../../../_base_/default_runtime.py',
]

max_epochs = 4
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
# as ../../_base_/lung_r18.py: ASPP's image-pool BN needs two images a batch
train_dataloader = dict(drop_last=True)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs))  # one checkpoint, at the end
# the demo's LR is used as is at its batch of 2 on one process
auto_scale_lr = dict(base_batch_size=2)
