# Pneumonia classification (Kermany et al.), MUSCLE Sec. 3: the paper's
# 4,686/585/585 patient-aware re-split; write it once with
#   python tools/dataset_converters/make_splits.py --data-root data
# The official protocol (Kermany's own 624-image test/, val carved from
# train/): add --protocol official to that command, then select it with
# MUSCLE_PROTOCOL=official (every dataset config, and the study's
# --protocol official) or per dataloader, e.g.
#   --cfg-options test_dataloader.dataset.protocol=official
_base_ = ['../xray_constants.py']

dataset_type = 'KermanyPneumoniaDataset'
data_root = 'data/chest_xray/'

# all images resized to the paper's 800x500 (w x h), Sec. 2.1
train_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale={{_base_.xray_scale}}, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
test_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale={{_base_.xray_scale}}, keep_ratio=False),
    dict(type='mmpretrain.PackInputs'),
]

# batch size and workers are not given in the paper
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))

# Acc / Sen / Spe / AUC (95% CI) of Table 2
val_evaluator = dict(type='BinaryClassificationMetric')
test_evaluator = val_evaluator
