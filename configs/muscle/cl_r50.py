# MUSCLE stage 2 with ResNet-50 (see cl_r18.py).
_base_ = [
    '../_base_/models/muscle_cl_r50.py',
    '../_base_/schedules/cl_4tasks_10rounds.py', '../_base_/default_runtime.py'
]
