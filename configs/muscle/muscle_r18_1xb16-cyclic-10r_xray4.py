# MUSCLE stage 2 (Sec. 2.2) with ResNet-18: 10 rounds x 4 tasks x 1 epoch,
# reshuffled order, cyclic cosine LR, L2-SP; 1 process, batches of 16
# (Pneumonia, MURA), 8 (lung) and 4 (TB) images. Alias: cl_r18.py.
_base_ = [
    '../_base_/models/muscle_cl_r18.py',
    '../_base_/datasets/xray4.py',
    '../_base_/schedules/cl_sgd-cyclic-cos_10rounds.py',
    '../_base_/cl_runtime.py',
]

# Stage 2 starts from the stage-1 (MD-MoCo) backbone, where
# `python tools/run_muscle.py --scale paper` writes it; a missing file stops
# the run saying how to make it. Another file:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# Random initialisation instead (not MUSCLE; an explicit opt-out):
#   --cfg-options model.backbone.init_cfg=None
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='mdmoco',
            checkpoint='work_dirs/muscle_paper/backbones/r18_mdmoco.pth',
            prefix='backbone.')))
