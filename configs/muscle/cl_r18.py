# MUSCLE stage 2 with ResNet-18: 10 rounds x 4 tasks x 1 epoch, reshuffled
# order, cyclic cosine LR, L2-SP (Sec. 2.2). Initialise the backbone from
# stage 1 with
#   --cfg-options model.backbone.init_cfg.type=Pretrained \
#     model.backbone.init_cfg.checkpoint=work_dirs/mdmoco_r18/epoch_200.pth \
#     model.backbone.init_cfg.prefix=backbone.
_base_ = [
    '../_base_/models/muscle_cl_r18.py',
    '../_base_/schedules/cl_4tasks_10rounds.py', '../_base_/default_runtime.py'
]
