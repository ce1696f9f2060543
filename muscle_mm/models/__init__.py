# Copyright (c) muscle_mm contributors. All rights reserved.
from .wrappers import *  # noqa: F401,F403
from .selfsup import *  # noqa: F401,F403
from .multitask import *  # noqa: F401,F403
from .init import *  # noqa: F401,F403
