# Copyright (c) muscle_mm contributors. All rights reserved.
from .loading import LoadXrayImage

__all__ = ['LoadXrayImage']
