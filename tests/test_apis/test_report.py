"""What the report states beside the tables: the seed, split counts and
bootstrap the runs actually used (their dumped configs, the study's
``--cfg-options`` merged in), and per val/test split how many images have a
copy in stage 1. No training: each run's work dir is given the config
``tools/train.py`` would have dumped for the study's command."""
import functools
import importlib.util
import json
import os.path as osp

import pytest
from mmengine.config import Config

from muscle_mm.apis import MuscleStudy, StudySettings
from muscle_mm.apis.report import (LOADERS, facts_notes, heldout_copies,
                                   leakage_note, run_config, study_facts)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@functools.lru_cache()
def train_tool():
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def dumped_run(study: MuscleStudy, task: str, init: str, tmp_path) -> dict:
    """The outputs ``MuscleStudy.stage3`` returns for a run, its work dir
    holding the config as mmengine's ``Runner.dump_config`` writes it for
    the command the study runs."""
    stage = tmp_path / 'w' / 'finetune' / f'{task}_r18_{init}'
    stage.mkdir(parents=True)
    config = study.finetune_config(task, 'r18', 'scratch')
    cmd = study.train_command(
        config, str(stage),
        [f'{loader}.dataset.protocol=paper' for loader in LOADERS])
    tool = train_tool()
    args = tool.parse_args(cmd[2:])  # after python tools/train.py
    cfg = tool.merge_args(Config.fromfile(args.config), args)
    cfg.dump(osp.join(cfg.work_dir, osp.basename(cfg.filename)))
    return dict(checkpoint=str(stage / 'epoch_1.pth'), config=config,
                metrics={})


@pytest.fixture
def in_demo(tmp_path, demo_data_root, monkeypatch):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(demo_data_root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('LOCAL_RANK', '0')  # train.py's parse_args sets it
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return tmp_path


def study(tmp_path, *options):
    return MuscleStudy(
        StudySettings(work_dir=str(tmp_path / 'w'), cfg_options=options),
        log=lambda m: 0)


def test_facts_are_what_the_runs_used(in_demo):
    seed1 = study(in_demo, 'randomness.seed=1',
                  'test_evaluator.num_bootstrap=7')
    pneumonia = dumped_run(seed1, 'pneumonia', 'scratch', in_demo)
    source = Config.fromfile(pneumonia['config'])
    assert source.randomness.seed == 0  # what the source config says
    facts = study_facts({'pneumonia': {'r18': {'scratch': pneumonia}}})
    assert facts['seed'] == 1
    assert facts['bootstrap'] == dict(resamples=7, level=0.95, seed=0)
    assert 'Seed 1.' in facts_notes(facts)[0]
    assert '7 resamples' in facts_notes(facts)[1]
    # the split counts: the datasets the run's config reads
    from mmengine.registry import DefaultScope

    from muscle_mm.registry import DATASETS
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        test = DATASETS.build(source.test_dataloader.dataset)
    assert facts['splits']['pneumonia']['test'] == len(test) > 0

    # another task's runs with another seed: one seed per task, and a
    # task whose runs differ lists them
    lung = dumped_run(study(in_demo, 'randomness.seed=2'), 'lung', 'scratch',
                      in_demo)
    other = dumped_run(study(in_demo, 'randomness.seed=3'), 'pneumonia',
                       'imagenet', in_demo)
    facts = study_facts({
        'pneumonia': {'r18': {'scratch': pneumonia, 'imagenet': other}},
        'lung': {'r18': {'scratch': lung}},
    })
    assert facts['seed'] == dict(pneumonia=[1, 3], lung=2)
    assert 'Seeds: Pneumonia 1, 3; Lung 2.' in facts_notes(facts)[0]

    # outputs without a dumped config (written by hand): the source config
    assert run_config(pneumonia).randomness.seed == 1
    by_hand = dict(pneumonia, checkpoint=str(in_demo / 'none' / 'e.pth'))
    assert run_config(by_hand).randomness.seed == 0


def test_notes_with_per_task_bootstrap():
    facts = dict(
        protocol='paper',
        splits=dict(pneumonia=dict(train=7, val=2, test=3)),
        seed=dict(pneumonia=0, mura=None),
        bootstrap=dict(
            pneumonia=dict(resamples=100, level=0.95, seed=0),
            mura=dict(resamples=50, level=0.9, seed=1)))
    assert facts_notes(facts) == [
        "Protocol: paper (the paper's re-splits). Images train/val/test: "
        'Pneumonia 7/2/3. Seeds: Pneumonia 0; MURA None.',
        'AUC CI: Pneumonia 95% percentile bootstrap of the test set, 100 '
        'resamples, seed 0; MURA 90% percentile bootstrap of the test set, '
        '50 resamples, seed 1.'
    ]


SUMMARY = dict(
    threshold=6,
    images=120,
    pairs=dict(exact=2, near=3),
    groups={
        'nih/all': 40, 'pneumonia/train': 30, 'pneumonia/val': 8,
        'pneumonia/test': 10, 'lung_masks/train': 20, 'lung_masks/val': 5,
        'lung_masks/test': 7
    },
    leakage=dict(
        stage1_images_with_heldout_copy=4,
        heldout_images_with_stage1_copy={
            'lung_masks/test': 3,
            'pneumonia/test': 1
        }))


def test_leakage_note_gives_k_of_n_per_heldout_split(tmp_path):
    audit = {k: SUMMARY[k] for k in ('threshold', 'images', 'pairs',
                                      'leakage')}
    # without the audit's image counts: the k alone
    assert heldout_copies(audit) == 'Lung test 3; Pneumonia test 1'
    # as MuscleStudy.leakage_info gives it: the summary's counts per split
    (tmp_path / 'audit').mkdir()
    (tmp_path / 'audit' / 'audit_summary.json').write_text(
        json.dumps(dict(SUMMARY, protocol='paper')))
    info = MuscleStudy(
        StudySettings(work_dir=str(tmp_path)), log=lambda m: 0).leakage_info()
    assert info['audit']['groups'] == SUMMARY['groups']
    note = leakage_note(info)
    assert note.startswith('Stage 1 (MD-MoCo) pre-trained on the whole '
                           'union, as the paper; the leakage audit '
                           '(threshold 6) found 4 of its images')
    assert note.endswith(
        '; val/test images with a stage-1 copy: Pneumonia val 0 of 8, '
        'test 1 of 10; Lung val 0 of 5, test 3 of 7.')
    info['exclude_leaks'] = True
    assert leakage_note(info).startswith(
        'Stage 1 (MD-MoCo) left out the 4 stage-1 image(s)')
    assert 'Lung val 0 of 5, test 3 of 7.' in leakage_note(info)
