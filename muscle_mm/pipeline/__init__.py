# Copyright (c) muscle_mm contributors. All rights reserved.
from .report import build_report
from .study import MuscleStudy, StudySettings

__all__ = ['MuscleStudy', 'StudySettings', 'build_report']
