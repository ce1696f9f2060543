# Copyright (c) muscle_mm contributors. All rights reserved.
"""Fixes for running the pinned OpenMMLab stack on torch 2.14 and numpy 2.

Both are applied once, when :mod:`muscle_mm` is imported, and are narrow:

* torch >= 2.6 loads checkpoints with ``weights_only=True``. mmengine's
  checkpoints also pickle its ``HistoryBuffer``/``ConfigDict`` and numpy
  arrays and scalars, so resume and ``init_cfg=Pretrained`` would fail. We keep
  the protection on and allow-list exactly those types. ``HistoryBuffer``
  pickles its bound statistics methods through ``getattr``, which must never
  be allow-listed (it opens arbitrary attribute access), so a ``copyreg``
  reducer saves it from its data alone; checkpoints written before
  muscle_mm was imported need ``weights_only=False`` (trusted files only).
* numpy 2 raises ``OverflowError`` in ``np.uint8(negative)``, which
  ``mmcv.image.adjust_hue`` does for every negative hue shift (any
  ``ColorJitter`` with ``hue>0``). We replace it with a version that performs
  the same modulo-256 hue rotation numpy 1 did, so no pipeline can hit it.
"""
import collections
from typing import Optional

import numpy as np
import torch


def _safe_globals() -> list:
    """Types found in mmengine checkpoints that are safe to unpickle."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    import numpy.dtypes as npdt

    try:  # numpy >= 2 moved the pickle helpers to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [
        getattr(npdt, name) for name in dir(npdt) if name.endswith('DType')
    ]
    return [
        HistoryBuffer, ConfigDict, collections.Counter, np.ndarray, np.dtype, _reconstruct, scalar,
        *dtype_classes
    ]


def _reduce_history_buffer(buffer) -> tuple:
    """Pickle a ``HistoryBuffer`` by its data (no bound methods)."""
    return type(buffer), (buffer._log_history, buffer._count_history,
                          buffer.max_length)


def _adjust_hue(img: np.ndarray,
                hue_factor: float,
                backend: Optional[str] = None) -> np.ndarray:
    """``mmcv.image.adjust_hue`` made safe for numpy 2 (same results).

    The hue channel is rotated by ``int(hue_factor * 255) mod 256`` in uint8
    arithmetic, which is what ``np.uint8(hue_factor * 255)`` did in numpy 1.
    """
    import cv2
    from mmcv.image import photometric
    from PIL import Image

    backend = backend or photometric.imread_backend
    if backend not in ['cv2', 'pillow']:
        raise ValueError(f'backend: {backend} is not supported.'
                         f"Supported backends are 'cv2', 'pillow'")
    if not (-0.5 <= hue_factor <= 0.5):
        raise ValueError(f'hue_factor:{hue_factor} is not in [-0.5, 0.5].')
    if not (isinstance(img, np.ndarray) and (img.ndim in {2, 3})):
        raise TypeError('img should be ndarray with dim=[2 or 3].')
    shift = np.uint8(int(hue_factor * 255) % 256)

    if backend == 'pillow':
        assert img.dtype == np.uint8, 'Pillow backend only support uint8 type'
        pil_image = Image.fromarray(img[..., ::-1], mode='RGB')
        h, s, v = pil_image.convert('HSV').split()
        np_h = np.array(h, dtype=np.uint8)
        with np.errstate(over='ignore'):
            np_h += shift
        pil_image = Image.merge('HSV', (Image.fromarray(np_h, 'L'), s, v))
        return np.array(pil_image.convert('RGB'), dtype=img.dtype)[..., ::-1]
    dtype = img.dtype
    hsv_img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    h, s, v = cv2.split(hsv_img)
    with np.errstate(over='ignore'):
        h = h.astype(np.uint8) + shift
    hsv_img = cv2.merge([h, s, v])
    return cv2.cvtColor(hsv_img, cv2.COLOR_HSV2BGR_FULL).astype(dtype)


def _fix_adjust_hue() -> None:
    import mmcv
    import mmcv.image
    import mmcv.image.photometric

    if int(np.__version__.split('.')[0]) < 2:
        return
    for module in (mmcv, mmcv.image, mmcv.image.photometric):
        if hasattr(module, 'adjust_hue'):
            module.adjust_hue = _adjust_hue


def apply_compat_fixes() -> None:
    """Allow-list mmengine's checkpoint types and fix ``adjust_hue``."""
    import copyreg
    from mmengine.logging import HistoryBuffer

    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    torch.serialization.add_safe_globals(_safe_globals())
    _fix_adjust_hue()
