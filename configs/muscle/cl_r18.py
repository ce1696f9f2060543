# Short name of the MUSCLE stage-2 ResNet-18 recipe.
_base_ = ['./muscle_r18_1xb16-cyclic-10r_xray4.py']
