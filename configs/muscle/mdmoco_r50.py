# Short name of the MD-MoCo ResNet-50 recipe (stage 1 of MUSCLE).
_base_ = ['./mdmoco_r50_8xb32-coslr-200e_xray9.py']
