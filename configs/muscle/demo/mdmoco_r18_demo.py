# MD-MoCo ResNet-18 on the demo miniatures of the nine datasets, sized to
# finish in a few minutes on 2 CPU cores. Prepare the data once:
#   python tools/misc/generate_demo_data.py --out data/demo
#   python tools/dataset_converters/make_splits.py --data-root data/demo
# Same model, views and optimiser as the paper-scale recipe; only sizes and
# the length of the run change.
_base_ = ['../mdmoco_r18_8xb32-coslr-200e_xray9.py']

demo_scale = (128, 80)  # (w, h): the paper's 800x500 aspect, 1/6.25 scale
max_epochs = 8

model = dict(queue_len=128)  # 8 batches of 16; the demo set has ~300 images

train_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale=demo_scale, keep_ratio=False),
    dict(type='mmpretrain.MultiView', num_views=2,
         transforms=[{{_base_.view_pipeline}}]),
    dict(type='mmpretrain.PackInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,  # keeps data_time < 5% of the step (benchmark_loading.py log)
    persistent_workers=True,
    dataset=dict(data_root='data/demo/', pipeline=train_pipeline))

# MoCo v2's lr 0.03 is kept although the batch is 16 (not 256): a short run
# has to move the weights visibly
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
         end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs))  # one checkpoint, at the end
# the demo's LR is used as is at its batch of 16 on one process
auto_scale_lr = dict(base_batch_size=16)
