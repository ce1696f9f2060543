# Copyright (c) muscle_mm contributors. All rights reserved.
"""Figures of the paper: ROC curves, segmentation overlays, heat-maps."""
from .plots import (plot_matrix_heatmap, plot_roc_curves,  # noqa: F401
                    plot_seg_overlays)
