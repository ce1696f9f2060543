# Copyright (c) muscle_mm contributors. All rights reserved.
"""Deprecated: the demo data generator is :mod:`muscle_mm.testing`."""
import warnings

from muscle_mm.testing import (DEMO_DATASETS, DEMO_SPLIT_PROPORTIONS,
                              generate_demo_data)
from muscle_mm.testing import generator, phantoms  # noqa: F401

warnings.warn(
    'muscle_mm.datasets.demo moved to muscle_mm.testing; this alias goes '
    'in the next release', DeprecationWarning, stacklevel=2)

__all__ = ['DEMO_DATASETS', 'DEMO_SPLIT_PROPORTIONS', 'generate_demo_data']
