# Stage 3 of MUSCLE (Sec. 2.3): fine-tune a ResNet-50 with its Faster R-CNN +
# FPN on TB detection (TBX11K), Table 3. The five initialisations of the paper
# are ../tbx_r50_{scratch, imagenet, mdmoco, muscle_minus, muscle}.py; they
# differ from this base only in model.backbone.init_cfg.
_base_ = [
    '../../../_base_/models/tasks/tbx_faster-rcnn_r50_fpn.py',
    '../../../_base_/datasets/tbx11k.py',
    '../../../_base_/schedules/finetune_det_sgd-step_1x.py',
    '../../../_base_/default_runtime.py',
]

# The task model trains every stage with BN in train mode (frozen_stages=-1,
# norm_eval=False), unlike mmdet's ImageNet recipes, so that Scratch and the
# pre-trained initialisations are fine-tuned alike. Its init_cfg=None (in
# stage 2 the shared backbone brings the weights) becomes an empty dict that
# the init_cfg of each initialisation merges into.
model = dict(backbone=dict(init_cfg=dict(_delete_=True)))
