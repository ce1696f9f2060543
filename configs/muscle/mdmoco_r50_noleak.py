# MD-MoCo ResNet-50 without leakage: the paper's recipe (mdmoco_r50.py)
# with every stage-1 image that has a copy in a task's val/test split left
# out of the union. The list is written by the leakage audit:
#   python tools/misc/audit_overlap.py --data-root data \
#       --work-dir work_dirs/audit
# (`tools/run_muscle.py --exclude-leaks` runs it and points this option at
# its own copy). The paper config keeps every image, as the paper did.
_base_ = ['./mdmoco_r50.py']

train_dataloader = dict(
    dataset=dict(exclude_file='work_dirs/audit/stage1_exclude.txt'))
