# Lung segmentation (Chest X-ray Masks and Labels), MUSCLE Sec. 3: the
# paper's 718/89/89 split of the images with a mask; write it once with
#   python tools/dataset_converters/make_splits.py --data-root data
# The lung masks have no official split: --protocol official writes this
# same split to muscle_splits_official/, so the study's official protocol
# runs here too; the metric reports Dice / mIoU per source (Montgomery,
# Shenzhen) as well as pooled.
_base_ = ['../xray_constants.py']

dataset_type = 'ChestXrayMasksDataset'
data_root = 'data/Lung Segmentation/'

# all images resized to the paper's 800x500 (w x h), Sec. 2.1; the mask
# follows (nearest) through mmcv's Resize / RandomFlip
train_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='Resize', scale={{_base_.xray_scale}}, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmseg.PackSegInputs'),
]
# as mmseg's configs: the metric compares at the original size
test_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale={{_base_.xray_scale}}, keep_ratio=False),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs'),
]

# batch size and workers are not given in the paper
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))

# Dice / mIoU of Table 3
val_evaluator = dict(type='LungSegMetric')
test_evaluator = val_evaluator
