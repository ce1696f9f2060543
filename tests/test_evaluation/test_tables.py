"""The figures the official track adds (MURA per study and kappa, TBX11K on
all images vs its TB images, lung per source) in the tables: a part below
Table 2/3 each, with headers naming the set, in the md, csv and json; the
paper's tables unchanged without them. Metric keys as the metrics name
them (tests/test_evaluation/test_metrics.py checks those)."""
import csv
import json

from muscle_mm.evaluation.tables import (build_table2, build_table3,
                                         to_markdown, write_tables)

MURA_STUDY = {
    'binary/kappa': 0.6129,
    'binary/study_accuracy': 60.0,
    'binary/study_sensitivity': 66.6667,
    'binary/study_specificity': 50.0,
    'binary/study_auc': 83.3333,
    'binary/study_auc_ci_low': 60.0,
    'binary/study_auc_ci_high': 100.0,
    'binary/study_kappa': 1 / 6,
    'binary/study_count': 5.0,
}
IMAGE = {
    'binary/accuracy': 70.0,
    'binary/sensitivity': 60.0,
    'binary/specificity': 80.0,
    'binary/auc': 75.0,
    'binary/auc_ci_low': 65.0,
    'binary/auc_ci_high': 85.0,
}
# TBDetectionMetric on a set with non-TB images: plain keys are all images,
# ``*_tb`` the TB images (the paper's figure)
TBX_OFFICIAL = {
    'tbx/mAP': 75.0,
    'tbx/AP_active': 50.0,
    'tbx/AP_latent': 100.0,
    'tbx/mAP_tb': 91.5,
    'tbx/AP_active_tb': 83.0,
    'tbx/AP_latent_tb': 100.0,
}
LUNG_SOURCES = {
    'lung/Dice': 80.0,
    'lung/Dice_pooled': 75.0,
    'lung/mIoU': 70.0,
    'lung/Dice_Montgomery': 60.0,
    'lung/mIoU_Montgomery': 56.0,
    'lung/Dice_Shenzhen': 100.0,
    'lung/mIoU_Shenzhen': 100.0,
}


def test_mura_per_study_and_kappa_part(tmp_path):
    plain = {'mura': {'r18': {'scratch': dict(IMAGE)}},
             'pneumonia': {'r18': {'scratch': dict(IMAGE)}}}
    full = {'mura': {'r18': {'scratch': {**IMAGE, **MURA_STUDY},
                             'baseline': {'accuracy': 60.0}}},
            'pneumonia': {'r18': {'scratch': dict(IMAGE)}}}
    assert build_table2(plain).parts == ()
    table = build_table2(full)
    # Table 2 itself is the paper's (per image)
    assert table.columns == build_table2(plain).columns
    assert table.rows[-1] == build_table2(plain).rows[-1]
    (part, ) = table.parts
    assert part.columns == [
        'Backbones', 'Pre-train', 'κ (images)', 'Acc. (studies)',
        'Sen. (studies)', 'Spe. (studies)', 'AUC (95%CI) (studies)',
        'κ (studies)'
    ]
    # the baseline has no per-study figure: no row of dashes
    assert part.rows == [[
        'ResNet-18', 'Scratch', '0.613', '60.00', '66.67', '50.00',
        '83.33 (60.00-100.00)', '0.167'
    ]]
    paths = write_tables(full, str(tmp_path))['table2']
    md = open(paths['md'], encoding='utf-8').read()
    assert '**MURA per study' in md
    assert '| ResNet-18 | Scratch | 0.613 | 60.00 |' in md
    with open(paths['mura_studies.csv'], encoding='utf-8') as f:
        assert list(csv.reader(f)) == [part.columns] + part.rows
    data = json.load(open(paths['json']))
    (record, ) = data['parts'][0]['rows']
    assert record['kappa'] == 0.6129
    assert record['study_kappa'] == 1 / 6
    assert record['study_auc_ci_high'] == 100.0
    assert record['study_count'] == 5.0
    assert 'study_kappa' not in data['rows'][-1]  # Table 2's rows as before


def test_tbx_tb_images_in_table3_all_images_in_a_part(tmp_path):
    # paper protocol: a TB-only test set, no ``_tb`` keys
    paper = {'tbx': {'r18': {'scratch': {'tbx/mAP': 91.5,
                                         'tbx/AP_active': 83.0,
                                         'tbx/AP_latent': 100.0}}}}
    table = build_table3(paper)
    assert table.columns[-3:] == ['TBX mAP', 'TBX AP_Active',
                                  'TBX AP_Latent']
    assert table.parts == ()
    official = {'tbx': {'r18': {
        'scratch': TBX_OFFICIAL,
        'baseline': {'mAP': 0.0, 'AP_active': 0.0, 'AP_latent': 0.0}}}}
    table = build_table3(official)
    # the same figure as the paper's: the TB images', named so
    assert table.columns[-3:] == [
        'TBX mAP (TB images)', 'TBX AP_Active (TB images)',
        'TBX AP_Latent (TB images)'
    ]
    assert table.rows[1][-3:] == ['91.50', '83.00', '100.00']
    assert table.rows[1][-3:] == build_table3(paper).rows[0][-3:]
    assert table.records[1]['tbx_map'] == 91.5
    (part, ) = table.parts
    assert part.name == 'tbx_all_images'
    assert part.columns[2:] == [
        'mAP (all images)', 'AP_Active (all images)',
        'AP_Latent (all images)'
    ]
    assert part.rows == [
        ['ResNet-18', 'Trivial baseline', '0.00', '0.00', '0.00'],
        ['ResNet-18', 'Scratch', '75.00', '50.00', '100.00'],
    ]
    paths = write_tables(official, str(tmp_path))['table3']
    data = json.load(open(paths['json']))
    assert data['parts'][0]['rows'][1] == dict(
        backbone='ResNet-18', pretrain='Scratch', tbx_map_all=75.0,
        tbx_ap_active_all=50.0, tbx_ap_latent_all=100.0)
    md = to_markdown(table).splitlines()
    assert '|  | Scratch | 75.00 | 50.00 | 100.00 |' in md


def test_lung_per_source_part():
    results = {'lung': {'r50': {'imagenet': LUNG_SOURCES,
                                'baseline': {'Dice': 0.0, 'mIoU': 40.0}}},
               'tbx': {'r50': {'imagenet': {'tbx/mAP': 20.0}}}}
    table = build_table3(results)
    assert table.columns[2:4] == ['Lung Dice', 'Lung mIoU']  # pooled
    assert table.rows[1][2:4] == ['80.00', '70.00']
    (part, ) = table.parts
    assert part.columns == [
        'Backbones', 'Pre-train', 'Dice (Montgomery)', 'mIoU (Montgomery)',
        'Dice (Shenzhen)', 'mIoU (Shenzhen)'
    ]
    assert part.rows == [[
        'ResNet-50', 'ImageNet', '60.00', '56.00', '100.00', '100.00'
    ]]
    assert part.records[0]['lung_dice_montgomery'] == 60.0
    assert part.records[0]['lung_miou_shenzhen'] == 100.0
    # parts print below the table, the notes below all
    md = to_markdown(table._replace(notes=['a note']))
    assert md.index('**Lung segmentation per source') < md.index('a note')
    assert md.index('Table 3.') < md.index('**Lung segmentation per source')
