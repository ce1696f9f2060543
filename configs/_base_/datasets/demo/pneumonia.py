# Demo miniature of pneumonia.py: data/demo/ (python tools/misc/
# generate_demo_data.py, then tools/dataset_converters/make_splits.py
# --data-root data/demo) at 128x80 (w x h), so a CPU run takes seconds.
_base_ = ['../pneumonia.py']

data_root = 'data/demo/chest_xray/'
demo_scale = (128, 80)

train_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale=demo_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
test_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale=demo_scale, keep_ratio=False),
    dict(type='mmpretrain.PackInputs'),
]

_loader = dict(num_workers=0, persistent_workers=False)
# batches of 8: at 2, BatchNorm's statistics of two images kept the
# classifier at chance, in stage 2 and stage 3 alike (issue 13)
train_dataloader = dict(
    batch_size=8,
    **_loader,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
# inference at 128x80 is cheap: larger batches for the (larger) test split
val_dataloader = dict(
    batch_size=16,
    **_loader,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16,
    **_loader,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
