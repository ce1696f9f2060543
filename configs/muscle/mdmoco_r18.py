# Short name of the MD-MoCo ResNet-18 recipe (stage 1 of MUSCLE).
_base_ = ['./mdmoco_r18_8xb32-coslr-200e_xray9.py']
