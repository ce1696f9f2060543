# Copyright (c) muscle_mm contributors. All rights reserved.
"""Fixes for running the pinned OpenMMLab stack on torch 2.14 and numpy 2.

Both are applied once, when :mod:`muscle_mm.utils` (or the registries, which
import it) is imported, and are narrow:

* torch >= 2.6 loads checkpoints with ``weights_only=True``. mmengine's
  checkpoints also pickle its ``HistoryBuffer``/``ConfigDict`` and numpy
  arrays and scalars, so resume and ``init_cfg=Pretrained`` would fail. We keep
  the protection on and allow-list exactly those types. ``HistoryBuffer``
  pickles its bound statistics methods through ``getattr``, which must never
  be allow-listed (it opens arbitrary attribute access), so a ``copyreg``
  reducer saves it from its data alone; checkpoints written before
  muscle_mm was imported need ``weights_only=False`` (trusted files only).
  An empty array (an empty ``HistoryBuffer`` holds two) pickles its data as
  ``bytes()``; ``bytes`` itself is not allow-listed (``bytes(10**12)`` would
  allocate a terabyte), only a stand-in that builds the empty ``b''``.
* numpy 2 raises ``OverflowError`` in ``np.uint8(negative)``, which
  ``mmcv.image.adjust_hue`` does for every negative hue shift (any
  ``ColorJitter`` with ``hue>0``). We replace it with a version that performs
  the same modulo-256 hue rotation numpy 1 did, so no pipeline can hit it.

A third is applied by the CPU AMP optimizer wrapper only (importing
``mmcv.ops`` costs most of a second): mmcv 2.1's CPU kernels of ``nms`` and
``roi_align`` have no bfloat16, so under CPU autocast they would fail in Faster
R-CNN; :func:`float32_mmcv_ops_under_cpu_autocast` runs them in float32 there.
"""
import collections
import functools
import pickle
from typing import Any, Optional

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


def _empty_bytes(*args) -> bytes:
    """``bytes`` for the weights-only unpickler: the empty ``b''`` only.

    Pickle protocol 2 (``torch.save``'s) writes ``bytes()`` for empty bytes
    and ``_codecs.encode`` (allowed by torch) for any other, so no
    checkpoint needs more.
    """
    if args:
        raise pickle.UnpicklingError(
            'weights-only loading allows bytes() (the data of an empty numpy '
            f'array) without arguments only, got bytes{args!r:.60}; load a '
            'file you trust with torch.load(..., weights_only=False).')
    return b''


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
    # protocol 2 names it __builtin__.bytes; torch maps that to builtins
    torch.serialization.add_safe_globals([(_empty_bytes, 'builtins.bytes')])
    _fix_adjust_hue()


# mmcv autograd Functions whose CPU kernels take float32/float64 only
_FLOAT32_CPU_OPS = (('mmcv.ops.nms', 'NMSop'), ('mmcv.ops.roi_align',
                                                'RoIAlignFunction'))


def _cast(value: Any, dtype: torch.dtype, reduced: bool) -> Any:
    """``value`` with its CPU floating tensors cast to ``dtype`` (only the
    half / bfloat16 ones if ``reduced``)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype, reduced) for v in value)
    if (isinstance(value, torch.Tensor) and value.is_floating_point()
            and value.device.type == 'cpu'
            and (not reduced or value.dtype in (torch.bfloat16, torch.half))):
        return value.to(dtype)
    return value


def _float32_under_cpu_autocast(function: type) -> None:
    """Run an autograd Function in float32 while CPU autocast is on, and
    give its outputs (and input gradients) the dtype of its first floating
    input, as a kernel with bfloat16 support would."""
    forward, backward = function.forward, function.backward

    @functools.wraps(forward)
    def float32_forward(ctx, *args, **kwargs):
        ctx.cpu_amp_dtype = None
        if not torch.is_autocast_enabled('cpu'):
            return forward(ctx, *args, **kwargs)
        dtype = next(
            (a.dtype for a in args
             if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
        with torch.autocast('cpu', enabled=False):
            out = forward(ctx, *_cast(args, torch.float32, True),
                          **_cast(kwargs, torch.float32, True))
        if dtype is None or dtype == torch.float32:
            return out
        ctx.cpu_amp_dtype = dtype
        return _cast(out, dtype, False)

    @functools.wraps(backward)
    def float32_backward(ctx, *grads):
        dtype = getattr(ctx, 'cpu_amp_dtype', None)
        if dtype is None:
            return backward(ctx, *grads)
        with torch.autocast('cpu', enabled=False):
            out = backward(ctx, *_cast(grads, torch.float32, True))
        return _cast(out, dtype, False)

    function.forward = staticmethod(float32_forward)
    function.backward = staticmethod(float32_backward)
    function.float32_under_cpu_autocast = True


def float32_mmcv_ops_under_cpu_autocast() -> None:
    """Let Faster R-CNN train under CPU bfloat16 autocast: mmcv's ``nms``
    and ``roi_align`` run in float32 there (their CPU kernels have no
    bfloat16). No effect outside CPU autocast, so none on GPUs. Idempotent.
    """
    import importlib
    for module, name in _FLOAT32_CPU_OPS:
        function = getattr(importlib.import_module(module), name)
        if not getattr(function, 'float32_under_cpu_autocast', False):
            _float32_under_cpu_autocast(function)
