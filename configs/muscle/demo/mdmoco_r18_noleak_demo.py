# The demo's MD-MoCo (mdmoco_r18_demo.py) without leakage: the stage-1
# images with a copy in a task's val/test split (the demo generator plants
# some) are left out of the union, as the leakage audit lists them:
#   python tools/misc/audit_overlap.py --data-root data/demo \
#       --work-dir work_dirs/audit_demo
# `tools/run_muscle.py --demo --exclude-leaks` runs both.
_base_ = ['./mdmoco_r18_demo.py']

train_dataloader = dict(
    dataset=dict(exclude_file='work_dirs/audit_demo/stage1_exclude.txt'))
