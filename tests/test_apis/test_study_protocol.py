"""The study's ``protocol`` (paper / official splits): settings, work dirs
that never mix the two, and the official protocol end to end on demo data."""
import json
import os
import os.path as osp
from pathlib import Path

import pytest

from muscle_mm.apis import MuscleStudy, StudySettings
from muscle_mm.apis.study import default_work_dir


def test_protocol_setting_and_its_work_dir(tmp_path):
    with pytest.raises(ValueError, match='protocol must be one of'):
        StudySettings(work_dir=str(tmp_path), protocol='kaggle')
    assert default_work_dir('demo') == osp.join('work_dirs', 'muscle_demo')
    assert default_work_dir('demo', 'official') == osp.join(
        'work_dirs', 'muscle_demo_official')


def test_a_stage_done_with_the_other_protocol_is_refused(tmp_path):
    stage = tmp_path / 'finetune' / 'mura_r18_scratch'
    stage.mkdir(parents=True)
    (stage / 'stage_done.json').write_text(
        json.dumps(dict(outputs=dict(metrics={}), seconds=1.0)))  # paper
    paper = MuscleStudy(StudySettings(work_dir=str(tmp_path)),
                        log=lambda m: 0)
    assert paper._stage('finetune/mura_r18_scratch', None) == dict(
        metrics={})
    official = MuscleStudy(
        StudySettings(work_dir=str(tmp_path), protocol='official'),
        log=lambda m: 0)
    with pytest.raises(ValueError, match='run with the paper protocol, not '
                       'official; results of the two must not mix'):
        official._stage('finetune/mura_r18_scratch', None)


@pytest.mark.slow
def test_official_protocol_end_to_end_on_demo(tmp_path, demo_data_root,
                                              monkeypatch):
    """Pneumonia and MURA from Scratch on the releases' own splits: every
    run reads them (the test split is Kermany's test/, MURA's valid), MURA
    is scored per study with kappa, and the report states the protocol, the
    counts, the seed and the bootstrap. One epoch a run: the plumbing is
    tested here, learning by the paper protocol's demo study."""
    from muscle_mm.apis import build_report
    from muscle_mm.utils import register_all_modules

    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(demo_data_root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MUSCLE_PROTOCOL', raising=False)
    register_all_modules(init_default_scope=False)
    work = tmp_path / 'w'
    study = MuscleStudy(
        StudySettings(
            work_dir=str(work),
            tasks=['pneumonia', 'mura'],
            inits=['scratch'],
            protocol='official',
            cfg_options=['train_cfg.max_epochs=1', 'randomness.seed=1']),
        log=lambda m: 0)
    results = study.run()
    mura = results['mura']['r18']['scratch']['metrics']
    assert -1 <= mura['binary/study_kappa'] <= 1
    assert -1 <= mura['binary/kappa'] <= 1
    assert 0 < mura['binary/study_count'] < 100
    # the runs read the official splits: their dumped configs say so
    stage = work / 'finetune' / 'pneumonia_r18_scratch'
    assert 'MUSCLE_PROTOCOL' not in os.environ  # set for the children only
    dumped = [p for p in stage.rglob('*.py')]
    assert dumped and "protocol='official'" in dumped[0].read_text()

    build_report(str(work), results, log=lambda m: 0, protocol='official')
    facts = json.loads((work / 'report' / 'protocol.json').read_text())
    assert facts['protocol'] == 'official'
    demo = Path(demo_data_root)
    n_test = sum(1 for _ in (demo / 'chest_xray' / 'chest_xray' /
                             'test').rglob('*.jpeg'))  # Kaggle's nesting
    assert n_test > 0
    assert facts['splits']['pneumonia']['test'] == n_test
    with open(demo / 'MURA-v1.1' / 'valid_image_paths.csv') as f:
        assert facts['splits']['mura']['test'] == sum(1 for ln in f
                                                      if ln.strip())
    # the seed the runs used (--cfg-options), not the configs' 0
    assert facts['seed'] == 1 and facts['bootstrap']['resamples'] == 100
    table2 = (work / 'report' / 'table2.md').read_text()
    assert 'Protocol: official' in table2 and 'Seed 1.' in table2
    data = json.loads((work / 'report' / 'table2.json').read_text())
    assert data['meta']['protocol'] == 'official'
    # MURA per study, with kappa, below Table 2
    assert '**MURA per study' in table2
    (part, ) = data['parts']
    assert part['rows'][-1]['study_kappa'] == pytest.approx(
        mura['binary/study_kappa'])


def test_the_tables_notes_state_protocol_counts_seed_and_bootstrap():
    from muscle_mm.apis.report import facts_notes
    facts = dict(
        protocol='official',
        splits=dict(pneumonia=dict(train=70, val=18, test=132)),
        seed=0,
        bootstrap=dict(resamples=100, level=0.95, seed=0))
    assert facts_notes(facts) == [
        "Protocol: official (each release's own train/test, val carved "
        'from train). Images train/val/test: Pneumonia 70/18/132. Seed 0.',
        'AUC CI: 95% percentile bootstrap of the test set, 100 resamples, '
        'seed 0.'
    ]
    assert len(facts_notes(facts, bootstrap=False)) == 1  # Table 3
