# MD-MoCo (MUSCLE Sec. 2.1) on the demo data: the stage-1 backbone that
# `python tools/run_muscle.py --demo` writes; another file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/lung_r18_demo.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='mdmoco',
            checkpoint='work_dirs/muscle_demo/backbones/r18_mdmoco.pth',
            prefix='backbone.')))
