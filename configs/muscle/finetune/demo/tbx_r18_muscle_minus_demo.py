# MUSCLE-- (MUSCLE Sec. 3) on the demo data: the stage-2 backbone without
# reshuffle, cyclic LR and L2-SP that `python tools/run_muscle.py --demo`
# writes; another file with --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/tbx_r18_demo.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='muscle_minus',
            checkpoint='work_dirs/muscle_demo/backbones/r18_muscle_minus.pth',
            prefix='backbone.')))
