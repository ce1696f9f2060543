# Demo of stage 3 (MUSCLE Sec. 2.3): ../_base_/mura_r18.py's model,
# optimiser and metrics on the MURA miniature of data/demo at 128x80,
# 3 epochs, well under a minute on 2 CPU cores. Prepare the data once:
#   python tools/misc/generate_demo_data.py --out data/demo
#   python tools/dataset_converters/make_splits.py --data-root data/demo
# Scratch (Kaiming) by default; another initialisation replaces init_cfg:
#   --cfg-options model.backbone.init_cfg._delete_=True
#     model.backbone.init_cfg.type=LocalPretrained
#     model.backbone.init_cfg.checkpoint=PATH
#     model.backbone.init_cfg.prefix=backbone.
_base_ = [
    '../../../_base_/models/tasks/fc_cls_r18.py',
    '../../../_base_/datasets/demo/mura.py',
    '../../../_base_/schedules/finetune_cls_sgd-step_30e.py',
    '../../../_base_/default_runtime.py',
]

max_epochs = 3
# Scratch, as ../mura_r18_scratch.py; zero_init_residual=False as
# ../_base_/mura_r18.py, so that a loaded backbone keeps its residual BN;
# mmpretrain's scope for the nested types, as there
model = dict(
    _scope_='mmpretrain',
    backbone=dict(
        zero_init_residual=False,
        init_cfg=[
            dict(
                type='Kaiming',
                layer='Conv2d',
                mode='fan_out',
                nonlinearity='relu',
                distribution='normal'),
            dict(
                type='Constant',
                val=1,
                bias=0,
                layer=['_BatchNorm', 'GroupNorm'])
        ]))

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

# ROC JSON only where out_dir is given, as ../_base_/mura_r18.py
val_evaluator = dict(out_dir=None, roc_file='roc_val.json')
test_evaluator = dict(out_dir=None, roc_file='roc_test.json')
