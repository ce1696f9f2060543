# Bone age of the demo RSNA Bone Age data (python tools/misc/
# generate_demo_data.py --out data/demo --datasets rsna_boneage), at
# 128x80 (w x h) as muscle_mm's demo tasks. BoneAgeDataset splits by id.
custom_imports = dict(imports=['boneage_task'], allow_failed_imports=False)

dataset_type = 'BoneAgeDataset'
data_root = 'data/demo/RSNA-BoneAge/'
demo_scale = (128, 80)

train_pipeline = [
    dict(type='LoadXrayImage'),
    dict(type='Resize', scale=demo_scale, keep_ratio=False),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['gt_age']),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline))
val_evaluator = dict(type='BoneAgeMAE')
