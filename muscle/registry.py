# Copyright (c) muscle_mm contributors. All rights reserved.
"""``muscle.registry`` is :mod:`muscle_mm.registry` (see ``muscle/__init__``)."""
from muscle_mm.registry import *  # noqa: F401,F403
