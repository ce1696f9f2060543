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
    assert StudySettings(str(tmp_path), scale='paper').data_root == 'data'


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
