# MUSCLE (Sec. 2.2): the backbone of multi-task continual learning from the
# MD-MoCo backbone, written by tools/run_muscle.py (or
# tools/model_converters/export_backbone.py); another file:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/lung_r18.py']

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='LocalPretrained',
            source='muscle',
            checkpoint='work_dirs/muscle_paper/backbones/r18_muscle.pth',
            prefix='backbone.')))
