# Copyright (c) muscle_mm contributors. All rights reserved.
"""Run one set of conv weights with another network's strides and dilations.

mmseg's DeepLabV3 expects a dilated ResNet (strides (1, 2, 1, 1), dilations
(1, 1, 2, 4), output stride 8) while mmdet's Faster R-CNN and mmpretrain's
classifiers use the plain one (output stride 32). Both have exactly the same
parameters; only the ``stride``/``padding``/``dilation`` attributes of a few
convolutions differ. MUSCLE (Sec. 2.2) trains *one* backbone, so the
segmentation task runs the shared weights with the geometry of its own stock
backbone, switched on for its forward pass only.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, Tuple

import torch.nn as nn

# (stride, padding, dilation) of one convolution
Geometry = Tuple[tuple, tuple, tuple]


def conv_geometry(module: nn.Module) -> Dict[str, Geometry]:
    """Return ``{name: (stride, padding, dilation)}`` of every conv layer."""
    return {
        name: (m.stride, m.padding, m.dilation)
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd)
    }


def geometry_diff(reference: nn.Module,
                  target: nn.Module) -> Dict[str, Geometry]:
    """Geometry of ``target``'s convs where it differs from ``reference``.

    Both modules must have the same conv layers (same names).
    """
    ref, tgt = conv_geometry(reference), conv_geometry(target)
    if set(ref) != set(tgt):
        missing = sorted(set(ref) ^ set(tgt))[:5]
        raise ValueError('The two backbones do not have the same conv layers; '
                         f'first differing names: {missing}')
    return {name: geo for name, geo in tgt.items() if geo != ref[name]}


@contextmanager
def switched_geometry(module: nn.Module,
                      geometry: Dict[str, Geometry]) -> Iterator[None]:
    """Temporarily give ``module``'s convs the ``geometry`` (then restore).

    Autograd records stride/padding/dilation at forward time, so a backward
    pass after the context has exited is still correct.
    """
    if not geometry:
        yield
        return
    convs = dict(module.named_modules())
    saved = {}
    try:
        for name, (stride, padding, dilation) in geometry.items():
            conv = convs[name]
            saved[name] = (conv.stride, conv.padding, conv.dilation)
            conv.stride, conv.padding, conv.dilation = stride, padding, \
                dilation
        yield
    finally:
        for name, (stride, padding, dilation) in saved.items():
            conv = convs[name]
            conv.stride, conv.padding, conv.dilation = stride, padding, \
                dilation
