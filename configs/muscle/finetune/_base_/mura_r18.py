# Stage 3 of MUSCLE (Sec. 2.3): fine-tune a ResNet-18 with its FC layer on
# skeletal abnormality classification (MURA), Table 2. The five initialisations
# of the paper are ../mura_r18_{scratch, imagenet, mdmoco, muscle_minus,
# muscle}.py; they differ from this base only in model.backbone.init_cfg.
_base_ = [
    '../../../_base_/models/tasks/fc_cls_r18.py',
    '../../../_base_/datasets/mura.py',
    '../../../_base_/schedules/finetune_cls_sgd-step_30e.py',
    '../../../_base_/default_runtime.py',
]

model = dict(
    # build the nested 'ResNet', 'LinearClsHead'... in mmpretrain's scope, as
    # mmseg:: / mmdet:: bases do for the other tasks (the type prefix
    # 'mmpretrain.' alone only resolves the outer ImageClassifier)
    _scope_='mmpretrain',
    # Scratch is Kaiming alone, as for the mmseg / mmdet ResNets of the
    # other tasks (they zero the residual BN only without an init_cfg);
    # loaded weights are kept whatever this flag (LocalPretrained)
    backbone=dict(zero_init_residual=False))

# ROC points of Fig. 2 (muscle_mm.visualization.plots), written only when
# out_dir is set. A metric cannot see the run's work dir, so the caller gives
# it: tools/run_muscle.py passes --cfg-options test_evaluator.out_dir=W.
val_evaluator = dict(out_dir=None, roc_file='roc_val.json')
test_evaluator = dict(out_dir=None, roc_file='roc_test.json')
