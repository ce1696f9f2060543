# MUSCLE stage 2 model (Sec. 2.2): one plain ResNet-18 shared by four task
# models, each built by its own library from the configs in ./tasks/ (which
# inherit the configs shipped with mmseg and mmdet). Tasks are given as config
# files because several `_base_` files of one config cannot each define
# `model`.
model = dict(
    type='MultiTaskModel',
    # Same type and keys as the stage-1 (MD-MoCo) backbone, whose weights
    # configs/muscle/cl_r18.py loads (init_cfg).
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=18,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN')),
    tasks=dict(
        pneumonia='{{ fileDirname }}/tasks/fc_cls_r18.py',
        mura='{{ fileDirname }}/tasks/fc_cls_r18.py',
        lung='{{ fileDirname }}/tasks/lung_deeplabv3_r18.py',
        tbx='{{ fileDirname }}/tasks/tbx_faster-rcnn_r18_fpn.py'))

# Under DDP the inactive tasks' heads get no gradient in a step. The scope
# prefix is needed: mmengine's runner looks wrappers up in its root registry.
model_wrapper_cfg = dict(
    type='muscle_mm.CPUDistributedDataParallel',
    broadcast_buffers=False,  # as mmengine's default wrapper
    find_unused_parameters=True)
