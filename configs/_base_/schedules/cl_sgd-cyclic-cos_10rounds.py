# MUSCLE stage 2 (Sec. 2.2): the schedule of multi-task continual learning
# over the tasks of the dataset config (../datasets/xray4.py). 10 rounds;
# each round visits the tasks one by one, 1 epoch each, in an order
# reshuffled every round (from the experiment seed); cyclic cosine learning
# rate (Eq. 1) and L2-SP towards the backbone of the previous task-iterate
# (Eq. 2). MUSCLE-- (configs/muscle/muscle_minus_*.py) switches
# the last three off.
train_cfg = dict(
    type='MultiTaskCLLoop',  # its tasks: the train_dataloader's, in order
    rounds=10,  # "10 rounds of learning process"
    epochs_per_task=1,  # "each iterate ... trains ... with 1 epoch"
    reshuffle=True,  # "reshuffle the order of tasks in every round"
    # every task is validated after every task-iterate: the accuracy matrix
    # (task x iterate, configs/_base_/cl_runtime.py) and forgetting; 'round'
    # validates 4x less often
    val_interval='iterate')
# each task is scored with backbone BatchNorm statistics re-estimated on 512
# of its training images in its own geometry (the running ones are those of
# the task trained last); training goes on with the running ones
val_cfg = dict(type='MultiTaskValLoop', precise_bn=dict(num_samples=512))

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
# task-iterate instead (docs/cl.md compares the two readings). The minimum
# is a ratio of the maximum (1e-4 at lr 0.01), so --auto-scale-lr scales
# both and the wave keeps its shape on any number of GPUs.
param_scheduler = dict(
    type='CyclicCosineLR', by_epoch=False, period='round', eta_min_ratio=0.01)

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
