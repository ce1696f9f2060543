# Short name of the MUSCLE-- (ablation) ResNet-18 recipe.
_base_ = ['./muscle-minus_r18_1xb16-const-10r_xray4.py']
