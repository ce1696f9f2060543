# Stage 3 of MUSCLE (Sec. 2.3): fine-tune a ResNet-50 with its DeepLab-V3 head
# on lung segmentation (Chest X-ray Masks and Labels), Table 3. The five
# initialisations of the paper are ../lung_r50_{scratch, imagenet, mdmoco,
# muscle_minus, muscle}.py; they differ from this base only in
# model.backbone.init_cfg.
_base_ = [
    '../../../_base_/models/tasks/lung_deeplabv3_r50.py',
    '../../../_base_/datasets/lung.py',
    '../../../_base_/schedules/finetune_seg_sgd-step_48e.py',
    '../../../_base_/default_runtime.py',
]

# the image-pool branch of ASPP has a BN over one value per image, which
# fails on a last batch of one
train_dataloader = dict(drop_last=True)
