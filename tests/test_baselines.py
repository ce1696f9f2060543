"""Trivial baselines of the test splits, the margin check, and how the
report's tables print them (issue 13, part 2)."""
import math

import numpy as np
import pytest

from muscle_mm.evaluation.baselines import (SEG_MARGIN, baseline_failures,
                                            classification_baseline,
                                            empty_mask_baseline,
                                            no_boxes_baseline)
from muscle_mm.evaluation.tables import (build_table2, build_table3,
                                         to_markdown, write_tables)


def test_classification_baseline_is_the_majority_class():
    base = classification_baseline([1, 1, 1, 0])
    assert base['accuracy'] == 75 and base['auc'] == 50
    assert (base['sensitivity'], base['specificity']) == (100, 0)
    assert (base['num_positive'], base['num_negative']) == (3, 1)
    base = classification_baseline([0, 0, 1])
    assert (base['sensitivity'], base['specificity']) == (0, 100)
    with pytest.raises(ValueError):
        classification_baseline([])


def test_empty_mask_baseline_scores_as_the_lung_metric():
    a = np.zeros((4, 5), bool)
    a[:2, :2] = True  # 4 lung pixels of 20
    b = np.zeros((2, 5), bool)  # no lung: Dice 1 for an empty prediction
    base = empty_mask_baseline([a, b])
    assert base['Dice'] == 50
    # background IoU 26/30, lung IoU 0
    assert base['mIoU'] == pytest.approx(100 * 26 / 30 / 2)
    assert base['Dice_pooled'] == 0


def test_no_boxes_scores_zero_where_there_is_ground_truth():
    base = no_boxes_baseline(dict(active=True, latent=False))
    assert base['AP_active'] == 0 and base['mAP'] == 0
    assert math.isnan(base['AP_latent'])


def test_baseline_failures_use_the_ci():
    base = classification_baseline([0] * 50 + [1] * 50)
    good = {'binary/accuracy': 80., 'binary/auc': 88.,
            'binary/auc_ci_low': 81., 'binary/auc_ci_high': 94.}
    assert baseline_failures('pneumonia', good, base) == []
    # 56% of 100 images: +-9.7 points does not clear 50
    weak = dict(good, **{'binary/accuracy': 56., 'binary/auc_ci_low': 48.})
    why = baseline_failures('mura', weak, base)
    assert len(why) == 2 and 'majority class' in why[0] and 'AUC' in why[1]
    lung = empty_mask_baseline([np.ones((4, 4), bool)])
    assert baseline_failures('lung', {'Dice': 90., 'mIoU': 85.}, lung) == []
    assert baseline_failures('lung', {'Dice': SEG_MARGIN / 2,
                                      'mIoU': 85.}, lung)
    tb = no_boxes_baseline(dict(active=True, latent=True))
    assert baseline_failures('tbx', {'tbx/mAP': 0.}, tb)
    assert baseline_failures('tbx', {'tbx/mAP': 3.}, tb) == []


def test_tables_print_the_baseline_first_and_the_notes(tmp_path):
    base = classification_baseline([0, 1, 1])
    results = {
        'pneumonia': {'r18': {'scratch': {'accuracy': 90., 'auc': 95.},
                              'baseline': base}},
        'lung': {'r18': {'scratch': {'Dice': 90., 'mIoU': 85.},
                         'baseline': {'Dice': 0., 'mIoU': 40.}}},
        'tbx': {'r18': {'scratch': {'mAP': 20.},
                        'baseline': no_boxes_baseline({'active': True})}},
    }
    table2 = build_table2(results)
    assert [r[2] for r in table2.rows] == ['Trivial baseline', 'Scratch']
    assert table2.rows[0][3] == '66.67'
    table3 = to_markdown(build_table3(results))
    assert '| ResNet-18 | Trivial baseline | 0.00 | 40.00 | 0.00 |' in table3
    paths = write_tables(results, str(tmp_path),
                         notes=dict(table2=['a note under Table 2']))
    text = open(paths['table2']['md']).read()
    assert text.rstrip().endswith('a note under Table 2')
    assert 'a note' not in open(paths['table3']['md']).read()
