# A tiny config for engine tests: linear regression, 2 epochs.
_base_ = ['../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['toy_modules'], allow_failed_imports=False)

model = dict(type='ToyRegressor', dim=8)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ToyRegressionDataset', num_samples=64, dim=8))
train_cfg = dict(by_epoch=True, max_epochs=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
param_scheduler = [dict(type='MultiStepLR', milestones=[1], gamma=0.1)]
custom_hooks = [dict(type='DumpWeightsHook'), dict(type='InterruptHook')]
default_hooks = dict(logger=dict(interval=4))
randomness = dict(seed=0)
