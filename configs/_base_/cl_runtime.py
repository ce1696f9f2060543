# Runtime of MUSCLE stage 2 (Sec. 2.2): default_runtime.py plus what the
# continual-learning loop is observed with.
_base_ = ['./default_runtime.py']

default_hooks = dict(
    # after every validation, one score per task (task x task-iterate) and
    # each task's forgetting -> work_dir/cl_accuracy_matrix.{json,png}
    accuracy_matrix=dict(
        type='AccuracyMatrixHook',
        score_keys=dict(
            pneumonia='binary/accuracy',
            mura='binary/accuracy',
            lung='lung/mIoU',
            tbx='tbx/mAP')),
    # the last checkpoint's (the exported backbone's) BatchNorm statistics
    # re-estimated over the four tasks' training images in the plain
    # geometry, not left to the task trained last
    backbone_bn=dict(type='BackboneBNHook', num_samples=512))
# log lines carry the active task's losses only
log_processor = dict(type='MultiTaskLogProcessor')
# mmengine's Runner whose --auto-scale-lr reads the task dataloaders
runner_type = 'MultiTaskRunner'
