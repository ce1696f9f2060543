# MUSCLE stage 2 on the demo data with a fifth task, bone age, added from
# outside muscle_mm: its demo CL config, inherited as `muscle_mm::`, plus one
# entry per task dict. From a folder holding data/demo (README.md):
#   PYTHONPATH=<this project> python <muscle_mm tools>/train.py THIS_CONFIG
_base_ = ['muscle_mm::muscle/demo/cl_r18_demo.py']
custom_imports = dict(imports=['boneage_task'], allow_failed_imports=False)

model = dict(tasks=dict(boneage='{{ fileDirname }}/_base_/boneage_fc_r18.py'))
# the task's dataset config by path, as muscle_mm's own tasks: each defines
# train_dataloader, val_dataloader and val_evaluator
train_dataloader = dict(boneage='{{ fileDirname }}/_base_/boneage_demo.py')
val_dataloader = dict(boneage='{{ fileDirname }}/_base_/boneage_demo.py')
val_evaluator = dict(boneage='{{ fileDirname }}/_base_/boneage_demo.py')
train_cfg = dict(tasks=['pneumonia', 'mura', 'lung', 'tbx', 'boneage'])
# the batch its LR is meant for (read by --auto-scale-lr)
auto_scale_lr = dict(base_batch_size=dict(boneage=2))
# the accuracy matrix scores bone age by its error, lower is better
default_hooks = dict(
    accuracy_matrix=dict(
        score_keys=dict(boneage='mae'), lower_is_better=['boneage']))
