# MD-MoCo (MUSCLE Sec. 2.1): MoCo v2 pre-training of ResNet-18 on the union
# of the nine X-ray training sets, 8 GPUs x 32 images, cosine lr, 200 epochs.
_base_ = [
    '../_base_/models/mdmoco_r18.py',
    '../_base_/datasets/xray9.py',
    '../_base_/schedules/mdmoco_sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]

# Two views per image. MUSCLE disables MoCo's random crop, Gaussian blur and
# colour/grey jitter "to preserve the semantic information" (Sec. 2.1); what
# is left follows MoCo-CXR (Sowrirajan et al. 2021, Sec. 2.2): horizontal
# flip and a random rotation of up to 10 degrees. The image keeps its full
# field of view: nothing is cropped or re-scaled per view.
view_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # angle ~ Uniform(-10, 10) degrees (magnitude_std='inf' draws
    # Uniform(0, 10), random_negative_prob flips the sign), like
    # torchvision's RandomRotation(10) in MoCo-CXR; black corners as in
    # the X-ray background
    dict(
        type='mmpretrain.Rotate',
        magnitude_range=(0, 10),
        magnitude_std='inf',
        prob=1.0,
        random_negative_prob=0.5,
        pad_val=0,
        interpolation='bilinear'),
]
train_pipeline = [
    dict(type='LoadXrayImage'),  # grey on 0-255, replicated to 3 channels
    # every source to the paper's 800x500 (w x h), Sec. 2.1
    dict(type='Resize', scale={{_base_.xray_scale}}, keep_ratio=False),
    dict(type='mmpretrain.MultiView', num_views=2,
         transforms=[view_pipeline]),
    dict(type='mmpretrain.PackInputs'),
]

train_dataloader = dict(
    # 8 GPUs x 32 = 256, the batch of MoCo v2 / mmpretrain mocov2; the
    # queue of 65536 is a multiple of it
    batch_size=32,
    collate_fn=dict(type='default_collate'),  # stack each view's batch
    dataset=dict(pipeline=train_pipeline))
