# Short name of the MUSCLE-- (ablation) ResNet-50 recipe.
_base_ = ['./muscle-minus_r50_1xb16-const-10r_xray4.py']
