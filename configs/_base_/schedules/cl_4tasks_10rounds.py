# MUSCLE stage 2 (Sec. 2.2): multi-task continual learning on the four task
# datasets. 10 rounds; each round visits the 4 tasks one by one, 1 epoch
# each, in an order reshuffled every round (from the experiment seed); cyclic
# cosine learning rate (Eq. 1) and L2-SP towards the backbone of the previous
# task-iterate (Eq. 2). MUSCLE-- (configs/muscle/muscle_minus_*.py) switches
# the last three off.
tasks = ['pneumonia', 'mura', 'lung', 'tbx']

# Each task's data comes from its dataset config, given by path: the four
# files define the same names (train_dataloader, ...), so they cannot all be
# `_base_` of one config. The loops read the named entry of each file.
train_dataloader = dict(
    pneumonia='{{ fileDirname }}/../datasets/pneumonia.py',
    mura='{{ fileDirname }}/../datasets/mura.py',
    lung='{{ fileDirname }}/../datasets/lung.py',
    tbx='{{ fileDirname }}/../datasets/tbx11k.py')
val_dataloader = train_dataloader  # their `val_dataloader`
val_evaluator = train_dataloader  # their `val_evaluator`

train_cfg = dict(
    type='MultiTaskCLLoop',
    tasks=tasks,
    rounds=10,  # "10 rounds of learning process"
    epochs_per_task=1,  # "each iterate ... trains ... with 1 epoch"
    reshuffle=True,  # "reshuffle the order of tasks in every round"
    # every task is validated after every task-iterate: the accuracy matrix
    # (task x iterate, configs/_base_/cl_runtime.py) and forgetting; 'round'
    # validates 4x less often
    val_interval='iterate')
val_cfg = dict(type='MultiTaskValLoop')
# mmengine's Runner whose --auto-scale-lr reads the task dataloaders
runner_type = 'MultiTaskRunner'

# The paper gives no optimizer settings; SGD as mmpretrain/mmseg/mmdet use.
# Its weight decay, on every parameter, is also the ridge term of Eq. 2:
# 2 * lambda * (1 - alpha) = weight_decay, the same as MUSCLE-- applies.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
# the batch of each task the LR above was set for (one process, the dataset
# configs' batch sizes); --auto-scale-lr multiplies it by the number of GPUs
auto_scale_lr = dict(
    enable=False, base_batch_size=dict(pneumonia=16, mura=16, lung=8, tbx=4))

# Eq. 1 with T = one round (one cosine wave per round). The loop derives T at
# run time from its dataloaders on each process, so it follows the datasets,
# batch sizes and number of GPUs; 'task_iterate' restarts the wave at every
# task-iterate instead (docs/cl.md compares the two readings).
param_scheduler = dict(
    type='CyclicCosineLR', by_epoch=False, period='round', eta_min=1e-4)

# Eq. 2: w0 = the backbone left by the previous task-iterate. The paper gives
# no lambda or alpha. L2-SP (Li et al., ICML 2018, ref. [15]) penalises
# a/2 ||w_S - w_S^0||^2 + b/2 ||w_new||^2 with a = 0.1, b = 0.01; its distance
# term gives Eq. 2's, lambda * alpha = a / 2. Its b is a ridge on the new
# layers (here the heads); Eq. 2's ridge is the optimizer's weight decay
# above, so alpha = (a / 2) / (a / 2 + weight_decay / 2).
l2sp_a = 0.1
custom_hooks = [
    dict(type='L2SPHook', distance_weight=l2sp_a / 2, anchor='previous')
]
