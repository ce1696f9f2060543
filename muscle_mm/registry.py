# Copyright (c) muscle_mm contributors. All rights reserved.
"""Registries of the ``muscle`` scope.

Each one is a child of mmengine's root registry, so modules of mmengine itself
and of the other OpenMMLab libraries stay reachable with their scope prefix
(``'mmdet.FasterRCNN'``), and ``locations`` lets ``default_scope='muscle_mm'``
import our modules on first use.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import \
    RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

import muscle_mm.utils  # noqa: F401 (compat fixes, atomic file backend)

# Explicit: the scope would otherwise be inferred from the package name.

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'FUNCTIONS',
    'METRICS', 'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS'
]

#######################################################################
#                            muscle_mm.engine                         #
#######################################################################

RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope='muscle_mm',
    locations=['muscle_mm.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor',
    parent=MMENGINE_RUNNER_CONSTRUCTORS,
    scope='muscle_mm',
    locations=['muscle_mm.engine'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='muscle_mm',
    locations=['muscle_mm.engine'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='muscle_mm',
    locations=['muscle_mm.engine'])
LOG_PROCESSORS = Registry(
    'log processor',
    parent=MMENGINE_LOG_PROCESSORS,
    scope='muscle_mm',
    locations=['muscle_mm.engine'])
OPTIMIZERS = Registry(
    'optimizer', parent=MMENGINE_OPTIMIZERS, scope='muscle_mm',
    locations=['muscle_mm.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope='muscle_mm',
    locations=['muscle_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='muscle_mm',
    locations=['muscle_mm.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMENGINE_PARAM_SCHEDULERS,
    scope='muscle_mm',
    locations=['muscle_mm.engine'])

#######################################################################
#                           muscle_mm.datasets                        #
#######################################################################

DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='muscle_mm',
    locations=['muscle_mm.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMENGINE_DATA_SAMPLERS,
    scope='muscle_mm',
    locations=['muscle_mm.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='muscle_mm',
    locations=['muscle_mm.datasets'])

#######################################################################
#                            muscle_mm.models                         #
#######################################################################

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='muscle_mm',
    locations=['muscle_mm.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='muscle_mm',
    locations=['muscle_mm.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMENGINE_WEIGHT_INITIALIZERS,
    scope='muscle_mm',
    locations=['muscle_mm.models'])
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, scope='muscle_mm',
    locations=['muscle_mm.models'])

#######################################################################
#                          muscle_mm.evaluation                       #
#######################################################################

METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='muscle_mm',
    locations=['muscle_mm.evaluation'])
EVALUATOR = Registry(
    'evaluator',
    parent=MMENGINE_EVALUATOR,
    scope='muscle_mm',
    locations=['muscle_mm.evaluation'])

#######################################################################
#                         muscle_mm.visualization                     #
#######################################################################

VISUALIZERS = Registry(
    'visualizer',
    parent=MMENGINE_VISUALIZERS,
    scope='muscle_mm',
    locations=['muscle_mm.visualization'])
VISBACKENDS = Registry(
    'vis_backend',
    parent=MMENGINE_VISBACKENDS,
    scope='muscle_mm',
    locations=['muscle_mm.visualization'])
FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, scope='muscle_mm',
    locations=['muscle_mm.utils'])
