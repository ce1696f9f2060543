# Scratch (MUSCLE Sec. 3) on the demo data: Kaiming's initialisation, as
# ../mura_r18_scratch.py.
_base_ = ['./_base_/mura_r18_demo.py']

model = dict(backbone=dict(init_cfg={{_base_.kaiming_init}}))
