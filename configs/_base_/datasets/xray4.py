# The four task datasets of MUSCLE stage 2 (Sec. 2.2), in the order the
# continual-learning loop lists its tasks: Pneumonia and MURA classification,
# lung segmentation, TB detection.
# Each task's data comes from its own dataset config, given by path: the four
# files define the same names (train_dataloader, ...), so they cannot all be
# `_base_` of one config. The loops read the named entry of each file.
train_dataloader = dict(
    pneumonia='{{ fileDirname }}/pneumonia.py',
    mura='{{ fileDirname }}/mura.py',
    lung='{{ fileDirname }}/lung.py',
    tbx='{{ fileDirname }}/tbx11k.py')
val_dataloader = train_dataloader  # their `val_dataloader`
val_evaluator = train_dataloader  # their `val_evaluator`
