# Copyright (c) muscle_mm contributors. All rights reserved.
"""Figures of the paper (ROC curves, segmentation overlays, heat-maps) and
the TensorBoard switch of the training tools."""
from .plots import (plot_matrix_heatmap, plot_roc_curves,  # noqa: F401
                    plot_seg_overlays)
from .tensorboard import check_tensorboard, enable_tensorboard  # noqa: F401
