# Copyright (c) muscle_mm contributors. All rights reserved.
"""Visualisation helpers (ROC curves, overlays, forgetting heat-maps)."""
