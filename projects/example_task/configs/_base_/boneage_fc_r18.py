# Bone-age regressor of the example task: muscle_mm's FC classifier of the
# stage-2 tasks (mmpretrain ImageClassifier, ResNet-18, global average
# pooling) with a one-output regression head in place of the classifier.
_base_ = ['muscle_mm::_base_/models/tasks/fc_cls_r18.py']
custom_imports = dict(imports=['boneage_task'], allow_failed_imports=False)

model = dict(
    head=dict(
        _delete_=True,
        # the head is ours: named with its scope inside an mmpretrain model
        type='muscle_mm.BoneAgeRegressionHead',
        in_channels=512))
