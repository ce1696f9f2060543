# MD-MoCo (MUSCLE Sec. 2.1): the stage-1 backbone, written by
# tools/run_muscle.py (or tools/model_converters/export_backbone.py); another
# file: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/tbx_r18.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='mdmoco',
            checkpoint='work_dirs/muscle_paper/backbones/r18_mdmoco.pth',
            prefix='backbone.')))
