# muscle_minus_r18.py on the demo data (see cl_r18_demo.py).
_base_ = ['./cl_r18_demo.py']

train_cfg = dict(reshuffle=False)
param_scheduler = None
custom_hooks = []
