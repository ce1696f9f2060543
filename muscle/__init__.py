# Copyright (c) muscle_mm contributors. All rights reserved.
"""Alias of :mod:`muscle_mm` for mmengine's scope lookup.

mmengine imports ``<scope>.registry`` when a registry of scope ``muscle`` is
used; this package makes that import find :mod:`muscle_mm.registry` (instead
of warning on every build).
"""
