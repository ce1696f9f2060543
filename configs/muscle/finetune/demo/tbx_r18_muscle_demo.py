# MUSCLE (MUSCLE Sec. 2.2) on the demo data: the stage-2 backbone that
# `python tools/run_muscle.py --demo` writes; another file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/tbx_r18_demo.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='muscle',
            checkpoint='work_dirs/muscle_demo/backbones/r18_muscle.pth',
            prefix='backbone.')))
