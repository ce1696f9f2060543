"""Tables 2/3 in the paper's layout and the figure helpers."""
import csv
import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from muscle_mm.evaluation.tables import (build_table2, build_table3,
                                         format_auc_ci, to_markdown,
                                         write_tables)
from muscle_mm.visualization.plots import (plot_matrix_heatmap,
                                           plot_roc_curves, plot_seg_overlays,
                                           roc_legend_label)


def binary(acc, sen, spe, auc, low, high, prefix='binary/'):
    return {
        f'{prefix}accuracy': acc,
        f'{prefix}sensitivity': sen,
        f'{prefix}specificity': spe,
        f'{prefix}auc': auc,
        f'{prefix}auc_ci_low': low,
        f'{prefix}auc_ci_high': high
    }


def paper_results():
    """A slice of the paper's Tables 2 and 3, keys in a scrambled order."""
    return {
        'MURA': {
            'r50': {
                'muscle': binary(82.60, 74.53, 88.21, 88.37, 87.38, 89.32)
            }
        },
        'pneumonia': {
            'r18': {
                'muscle':
                binary(97.26, 97.42, 96.84, 99.61, 99.32, 99.83),
                'scratch':
                binary(91.11, 93.91, 83.54, 96.58, 95.09, 97.81, prefix=''),
                'muscle--':
                binary(96.75, 97.66, 94.30, 99.51, 99.16, 99.77),
            }
        },
        'lung': {
            'r18': {
                'muscle': {
                    'lung/Dice': 95.37,
                    'lung/mIoU': 94.22
                },
                'imagenet': {
                    'lung/Dice': 95.26,
                    'lung/mIoU': 94.10
                },
            }
        },
        'tbx': {
            'r18': {
                'imagenet': {
                    'tbx/mAP': 29.46,
                    'tbx/AP_active': 56.27,
                    'tbx/AP_latent': 2.66
                },
                'mdmoco': {
                    'tbx/mAP': 36.00,
                    'tbx/AP_active': 67.17,
                    'tbx/AP_latent': float('nan')
                },
            }
        },
    }


def test_format_auc_ci():
    assert format_auc_ci(96.58, 95.09, 97.81) == '96.58 (95.09-97.81)'
    assert format_auc_ci(96.576, 95.0949, 97.8051) == '96.58 (95.09-97.81)'
    assert format_auc_ci(float('nan'), 1, 2) == '-'
    assert format_auc_ci(90.0, None, None) == '90.00'


def test_table2_paper_layout():
    table = build_table2(paper_results())
    assert table.columns == [
        'Datasets', 'Backbones', 'Pre-train', 'Acc.', 'Sen.', 'Spe.',
        'AUC (95%CI)'
    ]
    assert table.rows == [
        [
            'Pneumonia', 'ResNet-18', 'Scratch', '91.11', '93.91', '83.54',
            '96.58 (95.09-97.81)'
        ],
        [
            'Pneumonia', 'ResNet-18', 'MUSCLE--', '96.75', '97.66', '94.30',
            '99.51 (99.16-99.77)'
        ],
        [
            'Pneumonia', 'ResNet-18', 'MUSCLE', '97.26', '97.42', '96.84',
            '99.61 (99.32-99.83)'
        ],
        [
            'MURA', 'ResNet-50', 'MUSCLE', '82.60', '74.53', '88.21',
            '88.37 (87.38-89.32)'
        ],
    ]
    md = to_markdown(table).splitlines()
    # repeated dataset / backbone cells are blank, as printed in the paper
    assert md[4] == ('| Pneumonia | ResNet-18 | Scratch | 91.11 | 93.91 | '
                     '83.54 | 96.58 (95.09-97.81) |')
    assert md[5].startswith('|  |  | MUSCLE-- |')
    assert md[7].startswith('| MURA | ResNet-50 | MUSCLE |')


def test_table3_and_files_round_trip(tmp_path):
    paths = write_tables(paper_results(), str(tmp_path))
    table3 = build_table3(paper_results())
    assert table3.rows == [
        ['ResNet-18', 'ImageNet', '95.26', '94.10', '29.46', '56.27', '2.66'],
        ['ResNet-18', 'MD-MoCo', '-', '-', '36.00', '67.17', '-'],
        ['ResNet-18', 'MUSCLE', '95.37', '94.22', '-', '-', '-'],
    ]
    with open(paths['table3']['csv']) as f:
        assert list(csv.reader(f)) == [table3.columns] + table3.rows
    data = json.loads(open(paths['table3']['json']).read())
    assert data['rows'][1] == dict(
        backbone='ResNet-18',
        pretrain='MD-MoCo',
        lung_dice=None,
        lung_miou=None,
        tbx_map=36.0,
        tbx_ap_active=67.17,
        tbx_ap_latent=None)
    data2 = json.loads(open(paths['table2']['json']).read())
    assert data2['rows'][0]['auc_ci_low'] == 95.09
    md = open(paths['table2']['md']).read()
    assert '96.58 (95.09-97.81)' in md


def roc_json(fpr, tpr, auc, ci):
    return dict(fpr=fpr, tpr=tpr, thresholds=[None] * len(fpr), auc=auc, ci=ci)


def test_roc_plot_and_legend(tmp_path):
    good = roc_json([0, 0, 1], [0, 1, 1], 0.99614, [0.99321, 0.99829])
    assert roc_legend_label('MUSCLE', good) == \
        'MUSCLE: AUC (95% CI) 99.61 (99.32-99.83)'
    undefined = roc_json([], [], None, [None, None])
    assert roc_legend_label('x', undefined) == 'x: AUC (95% CI) undefined'

    path = tmp_path / 'scratch.json'
    path.write_text(
        json.dumps(roc_json([0, .5, 1], [0, .8, 1], .9, [.8, .95])))
    out = plot_roc_curves({
        'MUSCLE': good,
        'Scratch': str(path)
    }, str(tmp_path / 'fig' / 'roc.png'), 'Pneumonia')
    image = imread(out)
    assert image.ndim == 3 and image.shape[0] > 200

    with pytest.raises(FileNotFoundError, match='missing.json'):
        plot_roc_curves({'a': str(tmp_path / 'missing.json')},
                        str(tmp_path / 'x.png'))
    with pytest.raises(KeyError, match="'tpr'"):
        plot_roc_curves({'a': dict(fpr=[0], auc=0.5)}, str(tmp_path / 'x.png'))


def colour_pixels(png):
    rgb = imread(png)[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r > 0.5) & (r > g + 0.25) & (r > b + 0.25)
    green = (g > 0.6) & (g > r + 0.3) & (g > b + 0.3)
    return int(red.sum()), int(green.sum())


def test_seg_overlays_draw_contour_and_prediction(tmp_path):
    image = np.full((64, 64), 100, dtype=np.uint8)
    gt = np.zeros((64, 64), dtype=np.uint8)
    gt[16:48, 10:30] = 1
    empty = np.zeros_like(gt)

    red, green = colour_pixels(
        plot_seg_overlays([image], [gt], [gt], str(tmp_path / 'a.png')))
    assert red > 100 and green > 50
    red, green = colour_pixels(
        plot_seg_overlays([image], [gt], [empty], str(tmp_path / 'b.png')))
    assert red == 0 and green > 50
    red, green = colour_pixels(
        plot_seg_overlays([image], [empty], [gt], str(tmp_path / 'c.png')))
    assert red > 100 and green == 0

    # methods side by side, one row per image, like Fig. 3
    out = plot_seg_overlays([image, image], [gt, gt], {
        'ImageNet': [gt, empty],
        'MUSCLE': [gt, gt]
    }, str(tmp_path / 'grid.png'))
    assert imread(out).shape[1] > imread(str(tmp_path / 'a.png')).shape[1]

    with pytest.raises(ValueError, match="1 predicted masks for 'MUSCLE'"):
        plot_seg_overlays([image, image], [gt, gt], {'MUSCLE': [gt]},
                          str(tmp_path / 'x.png'))
    with pytest.raises(ValueError, match='same height and width'):
        plot_seg_overlays([image], [gt[:32]], [gt], str(tmp_path / 'x.png'))


def test_matrix_heatmap(tmp_path):
    matrix = [[90.0, math.nan], [85.5, 70.25]]
    out = plot_matrix_heatmap(
        matrix, ['after pneumonia', 'after mura'], ['pneumonia', 'mura'],
        str(tmp_path / 'forget.png'),
        title='Forgetting')
    assert imread(out).ndim == 3
    with pytest.raises(ValueError, match='does not match'):
        plot_matrix_heatmap(matrix, ['a'], ['b', 'c'], str(tmp_path / 'x.png'))
