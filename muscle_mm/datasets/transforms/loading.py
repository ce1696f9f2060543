# Copyright (c) muscle_mm contributors. All rights reserved.
"""Loading of X-ray images of any public format onto the paper's grey scale.

MUSCLE (Sec. 2.1) z-scores every image with mean 122.786 / std 18.390, two
numbers measured on the 0-255 grey scale. The nine datasets arrive as 8-bit
PNG/JPEG, 16-bit PNG (often 12-bit data) and, in clinical exports, DICOM, so
one loader brings them all onto that scale before mmcv's stock ``Resize`` and
the models' data preprocessors take over.
"""
import os
import tempfile
import threading
from io import BytesIO
from typing import Optional, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import MMLogger

from muscle_mm.registry import TRANSFORMS

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
JPEG_MAGIC = b'\xff\xd8'
DICOM_SUFFIXES = ('.dcm', '.dicom', '.dic')
INTENSITY_MAPPINGS = ('minmax', 'bit_depth')
# libjpeg warnings after which the decoded pixels are wrong (jerror.h);
# libjpeg prints them to stderr and decoding "succeeds"
JPEG_DATA_WARNINGS = ('Corrupt JPEG data', 'Premature end of JPEG file',
                      'Invalid SOS parameters',
                      'Inconsistent progression sequence')


class XrayDecodeError(OSError):
    """An image file exists but cannot be decoded as an X-ray image."""


def _decode_error(path: str, what: str) -> XrayDecodeError:
    return XrayDecodeError(f"cannot decode '{path}' as an image ({what})")


def is_dicom(data: bytes, path: str) -> bool:
    """DICOM by its 'DICM' magic after the 128-byte preamble, or by suffix
    for the preamble-less files some exporters write."""
    return data[128:132] == b'DICM' or path.lower().endswith(DICOM_SUFFIXES)


def check_complete(data: bytes, path: str) -> None:
    """Raise if a PNG/JPEG byte stream was cut short.

    Some OpenCV builds decode a truncated JPEG into a half-grey image with
    only a warning; a complete file ends its last scan (JPEG ``SOS``) with an
    ``EOI`` marker and its last ``IDAT`` chunk with ``IEND`` (PNG).
    """
    if data[:8] == PNG_MAGIC:
        complete = data.rfind(b'IEND') > data.rfind(b'IDAT')
    elif data[:2] == JPEG_MAGIC:
        complete = data.rfind(b'\xff\xd9') > data.rfind(b'\xff\xda')
    else:
        return
    if not complete:
        raise _decode_error(
            path, 'truncated: the file ends before its '
            'end-of-image marker')


class _Fd2Capture:
    """What native code writes to file descriptor 2 while a call runs.

    fd 2 belongs to the process, so captures are serialised by a lock; the
    sink is an unlinked temporary file, one per process (re-made after a
    fork, as data loader workers are forked). Output that is not a libjpeg
    data warning is written back to the real stderr.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sink: Optional[int] = None

    def __call__(self, fn, *args):
        with self.lock:
            if self.sink is None:
                self.sink = _open_sink()
            try:
                saved = os.dup(2)
            except OSError:  # no stderr at all: nothing to capture
                return fn(*args), ''
            try:
                os.dup2(self.sink, 2)
                out = fn(*args)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            size = os.fstat(self.sink).st_size
            if not size:
                return out, ''
            text = os.pread(self.sink, size, 0).decode('utf-8', 'replace')
            os.ftruncate(self.sink, 0)
            os.lseek(self.sink, 0, os.SEEK_SET)
            return out, text

    def reset(self) -> None:
        self.lock = threading.Lock()
        self.sink = None


def _open_sink() -> int:
    fd, name = tempfile.mkstemp(prefix='muscle_stderr_')
    os.unlink(name)
    return fd


_capture_fd2 = _Fd2Capture()
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_capture_fd2.reset)


def imdecode_strict(data: bytes,
                    path: str,
                    flags: int = cv2.IMREAD_UNCHANGED) -> Optional[np.ndarray]:
    """``cv2.imdecode`` that fails, naming ``path``, where libjpeg warned.

    A JPEG with a damaged scan decodes "successfully" into wrong pixels;
    libjpeg only prints e.g. 'Corrupt JPEG data: bad Huffman code' to
    stderr, naming no file. Such a warning (:data:`JPEG_DATA_WARNINGS`)
    raises :class:`XrayDecodeError` here; other stderr output is passed on.
    Returns what ``cv2.imdecode`` returns (None if it cannot decode).
    """
    buf = np.frombuffer(data, np.uint8)
    if data[:2] != JPEG_MAGIC:
        return cv2.imdecode(buf, flags)
    img, text = _capture_fd2(cv2.imdecode, buf, flags)
    lines = text.splitlines(keepends=True)
    bad = [ln.strip() for ln in lines if ln.startswith(JPEG_DATA_WARNINGS)]
    other = ''.join(
        ln for ln in lines if not ln.startswith(JPEG_DATA_WARNINGS))
    if other:
        os.write(2, other.encode('utf-8', 'replace'))
    if bad:
        raise _decode_error(
            path, f"libjpeg: '{'; '.join(bad)}': the pixels would be wrong; "
            "replace the file from the release, or drop it with "
            "on_error='skip'")
    return img


def to_grey(img: np.ndarray, order: str = 'bgr') -> np.ndarray:
    """One grey channel from grey, grey+alpha, RGB or RGBA pixels.

    Colour uses ITU-R 601 luma (what PIL's ``'L'`` and cv2 use); alpha is
    dropped, as X-ray exports only carry an opaque one.
    """
    if img.ndim == 2:
        return img
    channels = img.shape[2]
    if channels == 1:
        return img[..., 0]
    if channels in (3, 4):
        code = {
            ('bgr', 3): cv2.COLOR_BGR2GRAY,
            ('bgr', 4): cv2.COLOR_BGRA2GRAY,
            ('rgb', 3): cv2.COLOR_RGB2GRAY,
            ('rgb', 4): cv2.COLOR_RGBA2GRAY,
        }[order, channels]
        return cv2.cvtColor(img, code)
    raise ValueError(f'expected 1, 3 or 4 channels, got {channels}')


def nominal_range(img: np.ndarray) -> Tuple[float, float]:
    """The range an integer image's dtype can hold, e.g. 0-65535."""
    info = np.iinfo(img.dtype)
    return float(info.min), float(info.max)


def _dicom_lut_bits(item) -> int:
    return int(item.LUTDescriptor[2])


def dicom_output_range(ds, voi: Optional[str]) -> Tuple[float, float]:
    """The range pydicom's modality / VOI LUT output lies in.

    The same rule as ``pydicom.pixels.apply_windowing``: the stored range
    (``BitsStored``, signed or not) through rescale slope/intercept, or
    ``0..2**n-1`` for a LUT with ``n`` output bits.
    """
    if voi == 'lut':
        return 0.0, float(2**_dicom_lut_bits(ds.VOILUTSequence[0]) - 1)
    if ds.get('ModalityLUTSequence'):
        return 0.0, float(2**_dicom_lut_bits(ds.ModalityLUTSequence[0]) - 1)
    bits = int(ds.BitsStored)
    if int(ds.get('PixelRepresentation', 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-2**(bits - 1)), float(2**(bits - 1) - 1)
    slope = ds.get('RescaleSlope', None)
    if slope is not None:
        intercept = float(ds.get('RescaleIntercept', 0.0))
        lo, hi = lo * float(slope) + intercept, hi * float(slope) + intercept
    return min(lo, hi), max(lo, hi)


def _apply_luts(arr: np.ndarray, ds, apply_voi: bool):
    """Modality LUT (slope/intercept) then VOI LUT or window, via pydicom."""
    try:  # pydicom >= 3
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import (apply_modality_lut,
                                                      apply_voi_lut)
    arr = apply_modality_lut(arr, ds)
    voi = None
    if apply_voi:
        if ds.get('VOILUTSequence'):
            voi = 'lut'
        elif ds.get('WindowCenter') is not None \
                and ds.get('WindowWidth') is not None:
            voi = 'window'
    if voi is not None:
        arr = apply_voi_lut(arr, ds, index=0)
    return arr, voi


@TRANSFORMS.register_module()
class LoadXrayImage(BaseTransform):
    """Load an X-ray (PNG 8/16-bit, JPEG, DICOM) as grey levels on 0-255.

    0-255 is the scale of the paper's z-score constants (mean 122.786, std
    18.390, MUSCLE Sec. 2.1), which each model's data preprocessor applies.
    8-bit PNG/JPEG, on which those constants were measured, are kept as they
    are; 16-bit PNG and DICOM (after its modality and VOI LUTs) are mapped
    linearly onto 0-255 by ``intensity_mapping``. Colour collapses to grey
    (luma) and ``MONOCHROME1`` DICOM is inverted so that air is dark, as in
    every other source. A file cut short, or a JPEG libjpeg warns about
    (damaged scan data), is an error naming it, even where OpenCV would
    return wrong pixels. ``docs/datasets.md`` details each step.

    Added keys: ``img``, ``img_shape``, ``ori_shape``, ``bit_depth``,
    ``source_dtype`` and ``intensity_range`` (the ``(lo, hi)`` mapped onto
    0-255).

    Args:
        to_channels (int): 3 (grey replicated) or 1. Defaults to 3.
        to_float32 (bool): Output ``float32`` on 0-255 instead of ``uint8``.
            Defaults to False.
        intensity_mapping (str): ``'minmax'`` (the image's own range) or
            ``'bit_depth'`` (the range its source can hold). Defaults to
            ``'minmax'``.
        apply_voi (bool): Apply a DICOM's VOI LUT / window. Defaults to True.
        on_error (str): ``'raise'`` on a missing or undecodable file, or
            ``'skip'``: log the file and the running count of skipped ones
            and return None, so the dataset draws another image. Defaults to
            ``'raise'``.
        backend_args (dict, optional): Arguments of the file backend.
    """

    def __init__(self,
                 to_channels: int = 3,
                 to_float32: bool = False,
                 intensity_mapping: str = 'minmax',
                 apply_voi: bool = True,
                 on_error: str = 'raise',
                 backend_args: Optional[dict] = None) -> None:
        if to_channels not in (1, 3):
            raise ValueError(f'LoadXrayImage: to_channels must be 1 or 3, got '
                             f'{to_channels!r}')
        if intensity_mapping not in INTENSITY_MAPPINGS:
            raise ValueError(
                f'LoadXrayImage: intensity_mapping must be one of '
                f'{INTENSITY_MAPPINGS}, got {intensity_mapping!r}')
        if on_error not in ('raise', 'skip'):
            raise ValueError("LoadXrayImage: on_error must be 'raise' or "
                             f"'skip', got {on_error!r}")
        self.to_channels = to_channels
        self.to_float32 = to_float32
        self.intensity_mapping = intensity_mapping
        self.apply_voi = apply_voi
        self.on_error = on_error
        self.backend_args = backend_args.copy() if backend_args else None
        self.num_skipped = 0

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results:
            raise KeyError("LoadXrayImage: results has no 'img_path'; the "
                           'dataset must give each item an image path')
        path = results['img_path']
        try:
            img, bit_depth, dtype, lo_hi = self._read(path)
        except (OSError, ValueError) as err:
            if self.on_error == 'raise':
                raise
            self.num_skipped += 1
            MMLogger.get_current_instance().warning(
                f'LoadXrayImage skipped {path}: {err} '
                f'({self.num_skipped} skipped so far in this process)')
            return None

        if self.to_channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['bit_depth'] = bit_depth
        results['source_dtype'] = dtype
        results['intensity_range'] = lo_hi
        return results

    def _read(self, path: str):
        """Decode to one grey channel on 0-255; returns the pixels, bit
        depth, source dtype and the (lo, hi) mapped onto 0-255 (None for
        8-bit images kept as they are)."""
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"X-ray image '{path}' does not exist; check the dataset's "
                'data_root and its file list') from None
        if len(data) == 0:
            raise _decode_error(path, 'the file is empty')
        if is_dicom(data, path):
            return self._read_dicom(data, path)

        check_complete(data, path)
        img = imdecode_strict(data, path)
        if img is None:
            raise _decode_error(
                path, 'truncated or not an image file; expected PNG, JPEG '
                'or DICOM')
        if img.dtype not in (np.uint8, np.uint16):
            raise _decode_error(
                path, f'{img.dtype} pixels; expected 8- or 16-bit grey')
        img = to_grey(img, 'bgr')
        dtype, bit_depth = str(img.dtype), 8 * img.dtype.itemsize
        if img.dtype == np.uint8:  # already on the paper's scale
            img = img.astype(np.float32) if self.to_float32 else img
            return img, bit_depth, dtype, None
        if self.intensity_mapping == 'bit_depth':
            lo, hi = nominal_range(img)
        else:  # cv2: one pass, no temporary array
            lo, hi = cv2.minMaxLoc(img)[:2]
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        if self.to_float32:
            img = (img.astype(np.float32) - np.float32(lo)) * np.float32(scale)
        else:  # one pass in C; img >= lo, so the absolute value is a no-op
            img = cv2.convertScaleAbs(img, alpha=scale, beta=-lo * scale)
        return img, bit_depth, dtype, (float(lo), float(hi))

    def _read_dicom(self, data: bytes, path: str):
        import pydicom
        try:
            ds = pydicom.dcmread(BytesIO(data), force=True)
            raw = ds.pixel_array
        except Exception as err:  # pydicom raises many kinds
            raise _decode_error(
                path, f'DICOM without decodable pixel data: {err}; '
                'compressed transfer syntaxes need pylibjpeg or gdcm')
        if int(ds.get('NumberOfFrames', 1) or 1) > 1:
            raise _decode_error(
                path, f'{ds.NumberOfFrames}-frame DICOM; expected a single '
                'radiograph')
        photometric = str(ds.get('PhotometricInterpretation', 'MONOCHROME2'))
        bit_depth = int(ds.get('BitsStored', 8 * raw.dtype.itemsize))
        if photometric.startswith('MONOCHROME'):
            img, lo_hi = self._dicom_grey(raw, ds)
        elif raw.ndim == 3 and raw.shape[-1] in (3, 4):
            # pydicom already converted YBR to RGB; no LUTs for colour
            grey = to_grey(raw, 'rgb')
            if grey.dtype == np.uint8:  # as an 8-bit PNG: kept as it is
                lo_hi = None
                img = grey.astype(np.float32) if self.to_float32 else grey
            else:
                lo_hi = self._range(grey, nominal_range(grey))
                img = self._to_255(grey, lo_hi, invert=False)
        else:
            raise _decode_error(
                path, f"photometric interpretation '{photometric}'; expected"
                ' MONOCHROME1/2 or RGB')
        return img, bit_depth, str(raw.dtype), lo_hi

    def _dicom_grey(self, raw: np.ndarray, ds):
        """Modality + VOI LUT and the 0-255 mapping of a grey DICOM.

        For 8/16-bit pixels pydicom's LUT functions run once on every
        possible stored value and the image is looked up in the resulting
        table: exactly pydicom's output, several times faster than running
        them on millions of pixels. ``'minmax'`` then takes the table's
        range over the image's stored range, the image's own range for the
        monotonic LUTs (rescale, windows) DICOM uses.
        """
        invert = (str(ds.PhotometricInterpretation) == 'MONOCHROME1') != (
            str(ds.get('PresentationLUTShape', '')).upper() == 'INVERSE')
        if raw.dtype.kind in 'iu' and raw.dtype.itemsize <= 2:
            unsigned = np.dtype(f'uint{8 * raw.dtype.itemsize}')
            keys = np.arange(2**(8 * raw.dtype.itemsize), dtype=np.int64)
            keys = keys.astype(unsigned).view(raw.dtype)  # table order
            table, voi = _apply_luts(keys, ds, self.apply_voi)
            lo_s, hi_s = cv2.minMaxLoc(raw)[:2]
            stored = np.arange(int(lo_s), int(hi_s) + 1).astype(raw.dtype)
            used = table[stored.view(unsigned)]
            lo_hi = self._range(used, dicom_output_range(ds, voi))
            table = self._to_255(np.asarray(table, np.float64), lo_hi, invert)
            return table[raw.view(unsigned)], lo_hi
        arr, voi = _apply_luts(raw, ds, self.apply_voi)
        arr = np.asarray(arr, np.float64)
        lo_hi = self._range(arr, dicom_output_range(ds, voi))
        return self._to_255(arr, lo_hi, invert), lo_hi

    def _range(self, values: np.ndarray,
               nominal: Tuple[float, float]) -> Tuple[float, float]:
        """The (lo, hi) that ``intensity_mapping`` maps onto 0-255."""
        if self.intensity_mapping == 'bit_depth':
            return float(nominal[0]), float(nominal[1])
        return float(np.min(values)), float(np.max(values))

    def _to_255(self, values: np.ndarray, lo_hi: Tuple[float, float],
                invert: bool) -> np.ndarray:
        lo, hi = lo_hi
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out = (np.clip(values, lo, hi) - lo) * scale
        if not self.to_float32:
            out = np.rint(out)
        if invert:  # after rounding: exactly 255 - the uninverted image
            out = 255.0 - out
        return out.astype(np.float32 if self.to_float32 else np.uint8)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'to_channels={self.to_channels}, '
                f'to_float32={self.to_float32}, '
                f"intensity_mapping='{self.intensity_mapping}', "
                f'apply_voi={self.apply_voi}, '
                f"on_error='{self.on_error}', "
                f'backend_args={self.backend_args})')
