# MUSCLE-- (MUSCLE Sec. 3): stage 2 from the MD-MoCo backbone without task
# reshuffling, cyclic LR and L2-SP, written by tools/run_muscle.py (or
# tools/model_converters/export_backbone.py); another file:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/tbx_r18.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='muscle_minus',
            checkpoint='work_dirs/muscle_paper/backbones/r18_muscle_minus.pth',
            prefix='backbone.')))
