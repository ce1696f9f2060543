# Copyright (c) muscle_mm contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register the modules of muscle_mm and of the libraries it builds on.

    Importing the sub-packages fills the ``muscle_mm`` registries; mmpretrain,
    mmseg and mmdet register theirs too, so configs can name
    ``'mmdet.FasterRCNN'`` next to our own types.

    Args:
        init_default_scope (bool): Whether to set ``muscle_mm`` as the default
            scope. If another default scope is active, a new one named
            ``muscle_mm-<timestamp>`` is created so registries resolve here
            first. Defaults to True.
    """
    import mmdet.utils
    import mmpretrain.utils
    import mmseg.utils

    mmpretrain.utils.register_all_modules(init_default_scope=False)
    mmseg.utils.register_all_modules(init_default_scope=False)
    mmdet.utils.register_all_modules(init_default_scope=False)

    import muscle_mm.datasets  # noqa: F401,F403
    import muscle_mm.engine  # noqa: F401,F403
    import muscle_mm.evaluation  # noqa: F401,F403
    import muscle_mm.models  # noqa: F401,F403
    import muscle_mm.visualization  # noqa: F401,F403

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('muscle_mm')
    if never_created:
        DefaultScope.get_instance('muscle_mm', scope_name='muscle_mm')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'muscle_mm':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "muscle_mm", '
                      '`register_all_modules` will force the current'
                      'default scope to be "muscle_mm". If this is not '
                      'expected, please set `init_default_scope=False`.')
        # avoid name conflict
        new_instance_name = f'muscle_mm-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='muscle_mm')
