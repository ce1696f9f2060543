# ../xray4.py on the demo data (128x80 px; see ./pneumonia.py).
train_dataloader = dict(
    pneumonia='{{ fileDirname }}/pneumonia.py',
    mura='{{ fileDirname }}/mura.py',
    lung='{{ fileDirname }}/lung.py',
    tbx='{{ fileDirname }}/tbx11k.py')
val_dataloader = train_dataloader
val_evaluator = train_dataloader
