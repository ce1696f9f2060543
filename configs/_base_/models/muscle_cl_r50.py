# muscle_cl_r18.py with a plain ResNet-50 and the ResNet-50 task models.
_base_ = ['./muscle_cl_r18.py']

model = dict(
    backbone=dict(depth=50),
    tasks=dict(
        pneumonia='{{ fileDirname }}/tasks/fc_cls_r50.py',
        mura='{{ fileDirname }}/tasks/fc_cls_r50.py',
        lung='{{ fileDirname }}/tasks/lung_deeplabv3_r50.py',
        tbx='{{ fileDirname }}/tasks/tbx_faster-rcnn_r50_fpn.py'))
