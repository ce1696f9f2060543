# Copyright (c) muscle_mm contributors. All rights reserved.
"""``--exclude-leaks``: the study's stage-1 config, its guard, and the line
the report writes about the stage-1 data."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from muscle_mm.apis import MuscleStudy, StudySettings
from muscle_mm.apis.report import leakage_note


@pytest.mark.parametrize('scale', ['demo', 'paper'])
def test_stage1_config_and_plan(tmp_path, scale):
    paper = MuscleStudy(StudySettings(str(tmp_path), scale=scale))
    noleak = MuscleStudy(
        StudySettings(str(tmp_path), scale=scale, exclude_leaks=True))
    assert not paper.stage1_config('r18').endswith('_noleak.py')
    assert 'noleak' in osp.basename(noleak.stage1_config('r18'))
    assert noleak.plan()[0].config == noleak.stage1_config('r18')
    base = Config.fromfile(paper.stage1_config('r18'))
    variant = Config.fromfile(noleak.stage1_config('r18'))
    assert 'exclude_file' not in base.train_dataloader.dataset
    assert variant.train_dataloader.dataset.exclude_file.endswith(
        'stage1_exclude.txt')
    # otherwise the same recipe
    variant.train_dataloader.dataset.pop('exclude_file')
    a, b = base.to_dict(), variant.to_dict()
    a.pop('filename', None)
    b.pop('filename', None)
    assert a == b


def test_a_work_dir_keeps_its_stage1_data(tmp_path):
    marker = tmp_path / 'mdmoco_r18' / 'stage_done.json'
    marker.parent.mkdir()
    marker.write_text(json.dumps(dict(outputs=dict(backbone='b.pth'))))
    study = MuscleStudy(
        StudySettings(str(tmp_path), scale='paper', exclude_leaks=True),
        log=lambda m: 0)
    with pytest.raises(ValueError, match='without --exclude-leaks'):
        study.stage1('r18')
    study.s.exclude_leaks = False
    assert study.stage1('r18') == 'b.pth'  # done: skipped


def test_leakage_info_and_note(tmp_path):
    study = MuscleStudy(StudySettings(str(tmp_path), scale='paper'))
    info = study.leakage_info()
    assert info == dict(exclude_leaks=False, audit=None)
    assert 'no leakage audit was run' in leakage_note(info)
    os.makedirs(tmp_path / 'audit')
    (tmp_path / 'audit' / 'audit_summary.json').write_text(
        json.dumps(
            dict(threshold=8, images=900, pairs=dict(exact=2, near=10),
                 leakage=dict(stage1_images_with_heldout_copy=7),
                 cells={})))
    info = study.leakage_info()
    assert info['audit']['leakage']['stage1_images_with_heldout_copy'] == 7
    note = leakage_note(info)
    assert 'whole union, as the paper' in note and 'found 7' in note
    info['exclude_leaks'] = True
    assert leakage_note(info).startswith(
        'Stage 1 (MD-MoCo) left out the 7 stage-1 image(s)')


class AuditCommand(MuscleStudy):
    """The study's audit stage with the tool's command recorded, not run."""

    def __init__(self, settings):
        super().__init__(settings, log=lambda m: 0)
        self.commands = []

    def _run(self, cmd, log_file):
        self.commands.append(cmd)


def _arg(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_audit_states_its_protocol_and_shares_the_hash_cache(tmp_path):
    paper = AuditCommand(
        StudySettings(str(tmp_path / 'muscle_paper'), scale='paper'))
    official = AuditCommand(
        StudySettings(str(tmp_path / 'muscle_paper_official'),
                      scale='paper', protocol='official'))
    noleak = AuditCommand(
        StudySettings(str(tmp_path / 'noleak'), scale='paper',
                      exclude_leaks=True))
    for study in (paper, official, noleak):
        study.audit()
        cmd, = study.commands
        assert _arg(cmd, '--protocol') == study.s.protocol
        assert _arg(cmd, '--work-dir') == osp.join(study.work_dir, 'audit')
        # one cache for the variants beside each other
        assert _arg(cmd, '--cache-dir') == str(tmp_path / '.audit_cache')


def test_an_audit_of_the_other_protocol_is_refused(tmp_path):
    study = AuditCommand(
        StudySettings(str(tmp_path), scale='paper', protocol='official'))
    study.audit()  # marks the stage done (protocol official)
    summary = dict(threshold=6, images=9, pairs=dict(exact=0, near=1),
                   leakage=dict(stage1_images_with_heldout_copy=1),
                   groups={'pneumonia/test': 4})
    path = tmp_path / 'audit' / 'audit_summary.json'
    path.write_text(json.dumps(dict(summary, protocol='official')))
    assert study.leakage_info()['audit'] == dict(summary, protocol='official')
    path.write_text(json.dumps(dict(summary, protocol='paper')))
    for read in (study.leakage_info, study.audit):  # audit(): before stage 1
        with pytest.raises(ValueError, match='audits the paper protocol'):
            read()
    path.write_text(json.dumps(summary))  # before the field: 'paper'
    with pytest.raises(ValueError, match=str(path)):
        study.leakage_info()
    assert len(study.commands) == 1  # the done stage was not run again
