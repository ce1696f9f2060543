# Demo of stage 3 (MUSCLE Sec. 2.3): ../../_base_/mura_r18.py's model,
# optimiser and metrics on the MURA miniature of data/demo at 128x80,
# 12 epochs, about a minute on 2 CPU cores. Prepare the data once:
#   python tools/misc/generate_demo_data.py --out data/demo
#   python tools/dataset_converters/make_splits.py --data-root data/demo
# The initialisations are ../mura_r18_{scratch, imagenet, mdmoco,
# muscle_minus, muscle}_demo.py; they differ only in model.backbone.init_cfg.
_base_ = [
    './cls_r18_demo.py',
    '../../../../_base_/datasets/demo/mura.py',
]

# batch 8, as ./cls_r18_demo.py's LR assumes
train_dataloader = dict(batch_size=8)
# 12 epochs, x0.1 after 8: at ./cls_r18_demo.py's 6, Scratch found too few
# fractures to beat the majority class by its CI (acc 67.8 vs 59.3, 118
# test images; 75.4 at 12 epochs)
max_epochs = 12
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[8],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
# ROC JSON only where out_dir is given, as ../../_base_/mura_r18.py
val_evaluator = dict(out_dir=None, roc_file='roc_val.json')
test_evaluator = dict(out_dir=None, roc_file='roc_test.json')
