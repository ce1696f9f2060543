# Copyright (c) muscle_mm contributors. All rights reserved.
"""LoadXrayImage on files written here, values checked by hand formulas."""
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from muscle_mm import testing
from muscle_mm.datasets.transforms import LoadXrayImage, loading
from muscle_mm.datasets.transforms.loading import (XrayDecodeError,
                                                   check_complete)


def load(path, **kwargs):
    return LoadXrayImage(**kwargs).transform(dict(img_path=str(path)))


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB array, rounded: the hand reference."""
    rgb = rgb.astype(np.float64)
    return np.rint(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] +
                   0.114 * rgb[..., 2])


def write_dicom(path, arr, bits_stored=12, bits_allocated=16, **kwargs):
    """A 12-bit DICOM in 16-bit words unless told otherwise."""
    return testing.write_dicom(
        path, arr, bits_stored=bits_stored, bits_allocated=bits_allocated,
        **kwargs)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------ PNG/JPEG
def test_png_8bit_kept_as_is(tmp_path, rng):
    grey = rng.integers(0, 256, (40, 56), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), grey)
    res = load(tmp_path / 'a.png')
    assert res['img'].dtype == np.uint8
    assert res['img'].shape == (40, 56, 3)
    for c in range(3):  # grey replicated
        np.testing.assert_array_equal(res['img'][..., c], grey)
    assert res['img_shape'] == res['ori_shape'] == (40, 56)
    assert res['bit_depth'] == 8 and res['source_dtype'] == 'uint8'
    assert res['intensity_range'] is None

    res = load(tmp_path / 'a.png', to_channels=1, to_float32=True)
    assert res['img'].shape == (40, 56) and res['img'].dtype == np.float32
    np.testing.assert_array_equal(res['img'], grey.astype(np.float32))


def test_png_16bit_minmax_exact_levels(tmp_path):
    # 12-bit data in a 16-bit PNG: levels 1000 + 16k must land on k
    k = np.arange(256, dtype=np.uint16).reshape(16, 16)
    cv2.imwrite(str(tmp_path / 'b.png'), 1000 + 16 * k)
    res = load(tmp_path / 'b.png', to_channels=1)
    assert res['bit_depth'] == 16 and res['source_dtype'] == 'uint16'
    assert res['intensity_range'] == (1000.0, 1000.0 + 16 * 255)
    np.testing.assert_array_equal(res['img'], k.astype(np.uint8))


def test_png_16bit_minmax_and_bit_depth_random(tmp_path, rng):
    x = rng.integers(300, 4000, (48, 64), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'c.png'), x)
    xf = x.astype(np.float64)

    ref = (xf - xf.min()) * 255 / (xf.max() - xf.min())
    got = load(tmp_path / 'c.png', to_channels=1)['img']
    assert np.abs(got.astype(int) - np.rint(ref)).max() <= 1
    assert (got == np.rint(ref)).mean() > 0.99  # only float ties may differ
    flt = load(tmp_path / 'c.png', to_channels=1, to_float32=True)['img']
    np.testing.assert_allclose(flt, ref, atol=1e-3)

    res = load(
        tmp_path / 'c.png', to_channels=1, intensity_mapping='bit_depth')
    assert res['intensity_range'] == (0.0, 65535.0)
    ref = xf * 255 / 65535
    assert np.abs(res['img'].astype(int) - np.rint(ref)).max() <= 1
    assert res['img'].max() <= 16  # 12-bit data stays dark: why not default


def test_constant_16bit_image_maps_to_zero(tmp_path):
    cv2.imwrite(str(tmp_path / 'k.png'), np.full((8, 8), 777, np.uint16))
    assert not load(tmp_path / 'k.png')['img'].any()


def test_jpeg_matches_pil(tmp_path, rng):
    grey = cv2.GaussianBlur(
        rng.integers(0, 256, (64, 80), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(tmp_path / 'd.jpeg'), grey)
    res = load(tmp_path / 'd.jpeg', to_channels=1)
    ref = np.asarray(Image.open(tmp_path / 'd.jpeg').convert('L'))
    assert res['bit_depth'] == 8 and res['img'].shape == (64, 80)
    assert np.abs(res['img'].astype(int) - ref).max() <= 1


@pytest.mark.parametrize('mode', ['RGB', 'RGBA'])
def test_colour_png_to_grey(tmp_path, rng, mode):
    pix = rng.integers(0, 256, (24, 32, len(mode)), dtype=np.uint8)
    Image.fromarray(pix, mode).save(tmp_path / 'e.png')
    res = load(tmp_path / 'e.png')
    assert res['img'].shape == (24, 32, 3)
    assert np.abs(res['img'][..., 0].astype(int) - luma(pix)).max() <= 1
    np.testing.assert_array_equal(res['img'][..., 0], res['img'][..., 2])


def test_grey_alpha_and_rgb_jpeg_to_grey(tmp_path, rng):
    grey = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(grey).convert('LA').save(tmp_path / 'f.png')
    np.testing.assert_array_equal(
        load(tmp_path / 'f.png', to_channels=1)['img'], grey)

    # an X-ray saved as RGB JPEG (R=G=B) is the same grey image
    Image.fromarray(grey).convert('RGB').save(tmp_path / 'g.jpg', quality=100)
    ref = np.asarray(Image.open(tmp_path / 'g.jpg').convert('L'))
    got = load(tmp_path / 'g.jpg', to_channels=1)['img']
    assert np.abs(got.astype(int) - ref).max() <= 1


def test_16bit_rgb_png_to_grey(tmp_path, rng):
    rgb = rng.integers(0, 4096, (8, 8, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'h.png'), rgb[..., ::-1])  # cv2 writes BGR
    res = load(tmp_path / 'h.png', to_channels=1, to_float32=True)
    y = luma(rgb)  # cv2 rounds luma to integers before mapping
    ref = (y - y.min()) * 255 / (y.max() - y.min())
    assert res['bit_depth'] == 16
    np.testing.assert_allclose(res['img'], ref, atol=255 / (y.max() - y.min()))


# ------------------------------------------------------------------ DICOM
def window_ref(stored, slope, intercept, center, width):
    """DICOM PS3.3 C.11.2.1.2.1 linear window, as a fraction of the output
    range, times 255."""
    m = stored.astype(np.float64) * slope + intercept
    frac = (m - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(frac, 0, 1) * 255


def test_dicom_slope_intercept_window(tmp_path, rng):
    stored = rng.integers(0, 4096, (20, 24)).astype(np.uint16)
    path = write_dicom(
        tmp_path / 'i.dcm',
        stored,
        RescaleSlope=2,
        RescaleIntercept=-1024,
        WindowCenter=2000,
        WindowWidth=3000)
    res = load(path, to_channels=1, to_float32=True)
    ref = window_ref(stored, 2, -1024, 2000, 3000)
    np.testing.assert_allclose(res['img'], ref, atol=1e-2)
    assert res['bit_depth'] == 12 and res['source_dtype'] == 'uint16'

    u8 = load(path)['img']
    assert u8.shape == (20, 24, 3) and u8.dtype == np.uint8
    assert np.abs(u8[..., 0].astype(int) - np.rint(ref)).max() <= 1


@pytest.mark.parametrize('bits_allocated', [16, 32])
def test_dicom_table_and_direct_paths_agree_with_pydicom(
        tmp_path, rng, bits_allocated):
    """16-bit pixels go through a lookup table, 32-bit ones through
    pydicom's functions on the image: both equal pydicom's own output."""
    from pydicom import dcmread
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    stored = rng.integers(0, 4096, (9, 11))
    path = write_dicom(
        tmp_path / f'p{bits_allocated}.dcm',
        stored,
        bits_allocated=bits_allocated,
        RescaleSlope=0.5,
        RescaleIntercept=10,
        WindowCenter=800,
        WindowWidth=900,
        VOILUTFunction='SIGMOID')
    ds = dcmread(path)
    ref = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    ref = (ref - ref.min()) * 255 / (ref.max() - ref.min())
    res = load(path, to_channels=1, to_float32=True)
    np.testing.assert_allclose(res['img'], ref, atol=1e-3)
    assert res['source_dtype'] == f'uint{bits_allocated}'


def test_dicom_monochrome1_inverted_air_dark(tmp_path):
    # MONOCHROME1: low stored values are white; the air (0) must come out
    # bright->dark, i.e. 255 - mapping
    stored = np.array([[0, 1000], [2000, 4000]], np.uint16)
    path = write_dicom(tmp_path / 'j.dcm', stored, photometric='MONOCHROME1')
    res = load(path, to_channels=1)
    ref = 255 - np.rint(stored / 4000 * 255)  # minmax, then inverted
    np.testing.assert_array_equal(res['img'], ref.astype(np.uint8))
    assert res['img'][0, 0] == 255 and res['img'][1, 1] == 0

    mono2 = write_dicom(tmp_path / 'k.dcm', stored)
    assert load(mono2, to_channels=1)['img'][1, 1] == 255


def test_dicom_bit_depth_mapping_signed_rescaled(tmp_path, rng):
    stored = rng.integers(-2048, 2048, (10, 12)).astype(np.int16)
    path = write_dicom(
        tmp_path / 'l.dcm',
        stored,
        bits_stored=12,
        signed=True,
        RescaleSlope=1,
        RescaleIntercept=100)
    res = load(
        path, to_channels=1, to_float32=True, intensity_mapping='bit_depth')
    # nominal range of 12-bit signed values, shifted by the intercept
    assert res['intensity_range'] == (-2048 + 100, 2047 + 100)
    np.testing.assert_allclose(
        res['img'], (stored.astype(np.float64) + 2048) * 255 / 4095, atol=1e-3)
    assert res['source_dtype'] == 'int16'

    # apply_voi=False ignores a window that is present
    path = write_dicom(
        tmp_path / 'm.dcm',
        stored.astype(np.uint16) & 4095,
        WindowCenter=10,
        WindowWidth=2)
    windowed = load(path, to_channels=1)['img']
    assert set(np.unique(windowed)) <= {0, 255}
    assert len(np.unique(load(path, to_channels=1, apply_voi=False)['img'])) \
        > 2


def test_dicom_voi_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    stored = np.array([[0, 1, 2, 3]], np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries from stored 0, 8-bit output
    item.add_new('LUTData', 'US', [255, 100, 50, 0])
    path = write_dicom(
        tmp_path / 'n.dcm',
        stored,
        bits_stored=8,
        VOILUTSequence=Sequence([item]))
    res = load(path, to_channels=1, intensity_mapping='bit_depth')
    np.testing.assert_array_equal(res['img'], [[255, 100, 50, 0]])


# ------------------------------------------------------------------ bad input
def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'nope\.png.*does not exist'):
        load(tmp_path / 'nope.png')


@pytest.mark.parametrize('name,payload', [
    ('garbage.png', b'this is not an image' * 10),
    ('empty.png', b''),
    ('garbage.dcm', b'\x00' * 128 + b'DICM' + b'\x01' * 50),
])
def test_corrupt_file_names_it(tmp_path, name, payload):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(
            XrayDecodeError, match=rf"cannot decode '.*{name}' as an image"):
        load(tmp_path / name)


@pytest.mark.parametrize('name', ['t.png', 't16.png', 't.jpg'])
def test_truncated_file_names_it(tmp_path, rng, name):
    img = cv2.GaussianBlur(
        rng.integers(0, 256, (64, 64), dtype=np.uint8), (3, 3), 0)
    if name == 't16.png':
        img = img.astype(np.uint16) * 200
    cv2.imwrite(str(tmp_path / name), img)
    data = (tmp_path / name).read_bytes()
    # cut inside the pixel data, and just before the end marker
    for cut in (len(data) // 2, len(data) - 6):
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(OSError, match=rf"'.*{name}'.*truncated"):
            load(tmp_path / name)
        with pytest.raises(XrayDecodeError, match='truncated'):
            check_complete(data[:cut], name)  # independent of cv2's version
    check_complete(data, name)  # the intact file passes


def corrupt_scan(data: bytes) -> bytes:
    """A JPEG whose entropy-coded scan is damaged but still framed: bytes
    after the SOS header are flipped, no new 0xFF (marker) byte is made and
    stuffed ``FF 00`` pairs are left alone. libjpeg then only warns."""
    data = bytearray(data)
    sos = data.find(b'\xff\xda')
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], 'big')
    for i in range(start + 64, min(start + 512, len(data) - 2), 5):
        if 0xFF not in data[i - 1:i + 1]:
            data[i] ^= 0x55 if data[i] ^ 0x55 != 0xFF else 0x0F
    return bytes(data)


def write_corrupt_jpeg(path, rng, shape=(96, 128)):
    img = cv2.GaussianBlur(
        rng.integers(0, 256, shape, dtype=np.uint8), (7, 7), 0)
    ok, buf = cv2.imencode('.jpg', img)
    path.write_bytes(corrupt_scan(buf.tobytes()))
    return img


def test_corrupt_jpeg_scan_is_an_error_naming_the_file(tmp_path, rng, capfd):
    """libjpeg decodes a damaged scan into wrong pixels and only prints
    'Corrupt JPEG data' to stderr, naming no file: that is an error here."""
    path = tmp_path / 'scan.jpg'
    ref = write_corrupt_jpeg(path, rng)
    decoded = cv2.imdecode(np.fromfile(str(path), np.uint8), 0)
    assert np.abs(decoded.astype(int) - ref).mean() > 5  # pixels are wrong
    capfd.readouterr()
    with pytest.raises(
            XrayDecodeError,
            match=rf"'{re.escape(str(path))}'.*Corrupt JPEG data"):
        load(path)
    assert 'Corrupt JPEG' not in capfd.readouterr().err  # in the error only
    loader = LoadXrayImage(on_error='skip')
    assert loader.transform(dict(img_path=str(path))) is None
    assert loader.num_skipped == 1


def test_intact_jpeg_loads_and_other_stderr_passes_through(
        tmp_path, rng, capfd, monkeypatch):
    img = cv2.GaussianBlur(
        rng.integers(0, 256, (96, 128), dtype=np.uint8), (7, 7), 0)
    cv2.imwrite(str(tmp_path / 'ok.jpg'), img)
    real = loading.cv2.imdecode

    def noisy(buf, flags):  # a library printing something unrelated
        os.write(2, b'some other message\n')
        return real(buf, flags)

    monkeypatch.setattr(loading.cv2, 'imdecode', noisy)
    res = load(tmp_path / 'ok.jpg', to_channels=1)
    np.testing.assert_array_equal(res['img'],
                                  cv2.imread(str(tmp_path / 'ok.jpg'), 0))
    assert 'some other message' in capfd.readouterr().err


def test_on_error_skip_counts(tmp_path):
    (tmp_path / 'bad.png').write_bytes(b'xx')
    loader = LoadXrayImage(on_error='skip')
    assert loader.transform(dict(img_path=str(tmp_path / 'bad.png'))) is None
    assert loader.transform(dict(img_path=str(tmp_path / 'gone.png'))) is None
    assert loader.num_skipped == 2


@pytest.mark.parametrize('kwargs', [
    dict(to_channels=2),
    dict(intensity_mapping='percentile'),
    dict(on_error='ignore'),
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        LoadXrayImage(**kwargs)


# ------------------------------------------------------------------ pipeline
def test_pipeline_resize_to_paper_scale_and_zscore(tmp_path, repo_root, rng):
    """Registry-built LoadXrayImage + mmcv Resize to xray_scale (w, h), then
    a 1-channel ResNet behind the z-score data preprocessor."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.model import ImgDataPreprocessor
    from mmpretrain.models import ResNet

    from muscle_mm.utils import register_all_modules
    register_all_modules()
    consts = Config.fromfile(
        osp.join(repo_root, 'configs/_base_/xray_constants.py'))
    cv2.imwrite(
        str(tmp_path / 'p.png'),
        rng.integers(0, 65536, (90, 70), dtype=np.uint16))
    pipeline = Compose([
        dict(type='LoadXrayImage', to_channels=1),
        dict(type='Resize', scale=consts.xray_scale, keep_ratio=False),
        dict(type='mmpretrain.PackInputs'),
    ])
    out = pipeline(dict(img_path=str(tmp_path / 'p.png')))
    w, h = consts.xray_scale
    assert out['inputs'].shape == (1, h, w)  # 500 rows x 800 columns

    pre = ImgDataPreprocessor(
        mean=consts.xray_mean[:1], std=consts.xray_std[:1])
    batch = pre(dict(inputs=[out['inputs']], data_samples=None))['inputs']
    ref = (out['inputs'].float() - 122.786) / 18.390
    torch.testing.assert_close(batch[0], ref)

    small = torch.nn.functional.interpolate(batch, size=(64, 96))
    backbone = ResNet(depth=18, in_channels=1)
    backbone.eval()  # mmpretrain's train() returns None
    feats = backbone(small)
    assert feats[-1].shape == (1, 512, 2, 3)


# ------------------------------------------------------------------ benchmark
def benchmark_tool(repo_root):
    import importlib.util
    path = osp.join(repo_root, 'tools/analysis_tools/benchmark_loading.py')
    spec = importlib.util.spec_from_file_location('benchmark_loading', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_log_mode(tmp_path, repo_root, capsys):
    import argparse
    import json
    tool = benchmark_tool(repo_root)
    run = tmp_path / 'work' / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    train = [(1.0, 0.50), (0.9, 0.02), (1.1, 0.03), (1.0, 0.04)]
    with open(run / 'scalars.json', 'w') as f:
        for i, (t, d) in enumerate(train):
            f.write(
                json.dumps(
                    dict(
                        lr=0.03, loss=1.0, time=t, data_time=d, iter=i,
                        step=i)) + '\n')
        # a validation entry: no lr/loss, must be ignored
        f.write(json.dumps(dict(time=5.0, data_time=5.0, step=1)) + '\n')

    args = argparse.Namespace(
        path=str(tmp_path / 'work'), skip=1, max_ratio=0.05)
    assert tool.run_log(args) == 0  # (0.02+0.03+0.04) / 3.0 = 3%
    assert 'data_time/time = 3.00%' in capsys.readouterr().out
    args.skip = 0  # the start-up window pushes it to 14.75%
    assert tool.run_log(args) == 1
    assert '14.75%' in capsys.readouterr().out

    log = tmp_path / 'run.log'
    log.write_text(
        'x - mmengine - INFO - Epoch(train) [1][ 2/18]  lr: 3.0000e-02  '
        'eta: 0:01:11  time: 2.0000  data_time: 0.5000  loss: 1.8879\n'
        'x - mmengine - INFO - Epoch(train) [1][ 4/18]  lr: 3.0000e-02  '
        'eta: 0:01:11  time: 2.0000  data_time: 0.0200  loss: 1.8879\n')
    args.path = str(log)
    args.skip = 1
    assert tool.run_log(args) == 0
    assert '1.00%' in capsys.readouterr().out

    args.path = str(tmp_path / 'empty')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        tool.run_log(args)


def test_benchmark_files_mode_small(tmp_path, repo_root, capsys):
    import argparse
    tool = benchmark_tool(repo_root)
    args = argparse.Namespace(
        size='64x80', scale='32x20', repeat=1, keep=str(tmp_path))
    assert tool.run_files(args) == 0
    out = capsys.readouterr().out
    for kind in ('png16', 'jpeg', 'dicom'):
        assert kind in out
    # the generated files are what they claim to be
    assert cv2.imread(str(tmp_path / 'xray16.png'), -1).dtype == np.uint16
    res = load(tmp_path / 'xray.dcm', to_channels=1)
    assert res['bit_depth'] == 12 and res['img'].shape == (80, 64)
