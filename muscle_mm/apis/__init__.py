# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study as a library: its stages, its report and its preflight."""
from .report import build_report
from .study import MuscleStudy, StudySettings

__all__ = ['MuscleStudy', 'StudySettings', 'build_report']
