"""The study runner: stage bookkeeping (skip when done, redo when
interrupted), settings validation, and the report from stage outputs."""
import json
import os.path as osp

import pytest

from muscle_mm.pipeline import MuscleStudy, StudySettings


def test_settings_reject_unknown_names(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['brain'\]"):
        StudySettings(work_dir=str(tmp_path), tasks=['pneumonia', 'brain'])
    with pytest.raises(ValueError, match='scale'):
        StudySettings(work_dir=str(tmp_path), scale='huge')


def test_stage_runs_once_and_is_redone_after_interruption(tmp_path):
    study = MuscleStudy(StudySettings(work_dir=str(tmp_path)), log=lambda m: 0)
    calls = []

    def interrupted(stage_dir):
        calls.append(stage_dir)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        study._stage('mdmoco_r18', interrupted)
    assert not osp.exists(tmp_path / 'mdmoco_r18' / 'stage_done.json')

    def body(stage_dir):
        calls.append(stage_dir)
        return dict(backbone=osp.join(stage_dir, 'backbone.pth'))

    out = study._stage('mdmoco_r18', body)
    again = study._stage('mdmoco_r18', body)
    assert out == again and len(calls) == 2  # skipped the third time
    marker = json.loads((tmp_path / 'mdmoco_r18' / 'stage_done.json')
                        .read_text())
    assert marker['outputs'] == out


def test_imagenet_without_weights_is_skipped_not_downloaded(tmp_path):
    logs = []
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path)), log=logs.append)
    assert study.stage3('pneumonia', 'r18', 'imagenet', None) is None
    assert study.stage3('pneumonia', 'r18', 'imagenet',
                        str(tmp_path / 'missing.pth')) is None
    assert any('no local ImageNet weights' in m for m in logs)


@pytest.mark.slow
def test_demo_study_one_task_end_to_end(tmp_path):
    """Data, fine-tune + test, and the report for one task and one init."""
    from muscle_mm.pipeline import build_report
    from muscle_mm.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    study = MuscleStudy(
        StudySettings(
            work_dir=str(tmp_path), tasks=['pneumonia'], inits=['scratch']),
        log=lambda m: 0)
    results = study.run()
    metrics = results['pneumonia']['r18']['scratch']['metrics']
    for key in ('accuracy', 'sensitivity', 'specificity', 'auc',
                'auc_ci_low', 'auc_ci_high'):
        assert 0 <= metrics[f'binary/{key}'] <= 100
    roc = json.loads((tmp_path / 'finetune' / 'pneumonia_r18_scratch' /
                      'roc.json').read_text())
    assert roc['fpr'][0] == 0 and roc['tpr'][-1] == 1
    written = build_report(str(tmp_path), results, log=lambda m: 0)
    table = (tmp_path / 'report' / 'table2.md').read_text()
    assert '| Pneumonia | ResNet-18 | Scratch |' in table
    assert osp.isfile(written['roc_pneumonia_r18'])
