# Copyright (c) muscle_mm contributors. All rights reserved.
"""Backbone exports for the ecosystem: OpenMMLab, torchvision, timm and the
Hugging Face hub, each with a model card.

timm's ResNet names its tensors as torchvision's (``conv1``, ``bn1``,
``layerX.Y.downsample.0``, ``fc``), which are also mmpretrain's, so the timm
export is the torchvision one checked against ``timm.create_model``. Its
folder is timm's hub layout, ``config.json`` + ``model.safetensors`` +
``README.md`` (the model card, with the hub's YAML header; also written as
``MODEL_CARD.md``): exactly what the Hugging Face hub hosts for a timm model,
so ``hf`` writes the same folder and needs no ``transformers``. Load it offline with::

    timm.create_model('local-dir:/path/folder', pretrained=True)
"""
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from muscle_mm.metainfo import (DATASET_TERMS, INIT_NAMES, STAGE_BACKBONES,
                                TABLE1, TASK_DATASETS)
from .checkpoint import (QUERY_PREFIX, _guess_depth, _state_dict_of,
                         export_backbone, extract_backbone, to_torchvision)
from .fileio import atomic_write

#: ``--format`` values; ``timm`` and ``hf`` write a folder, the others a file.
FORMATS = ('openmmlab', 'torchvision', 'timm', 'hf')
FOLDER_FORMATS = ('timm', 'hf')
WEIGHTS_NAME = 'model.safetensors'
CONFIG_NAME = 'config.json'
CARD_NAME = 'MODEL_CARD.md'
HUB_CARD_NAME = 'README.md'  # the hub shows this file as the model card

#: What each stage of the study is (Sec. 2), by its initialisation key.
STAGE_TITLES = dict(
    mdmoco='stage 1, MD-MoCo: MoCo v2 on X-ray images (Sec. 2.1)',
    muscle='stage 2, MUSCLE: multi-task continual learning with reshuffled '
    'tasks, cyclic LR and L2-SP (Sec. 2.2)',
    muscle_minus='stage 2, MUSCLE--: multi-task continual learning without '
    'reshuffling, cyclic LR and L2-SP (Sec. 3, ablation)')


def _constants_file() -> str:
    """``configs/_base_/xray_constants.py`` of the checkout or the package's
    ``.mim`` copy."""
    from muscle_mm.apis.paths import get_config_path
    return get_config_path('_base_/xray_constants.py')


def xray_input_config(cfg=None) -> dict:
    """Normalisation and input size the backbone expects.

    From the training config ``cfg`` where it says (the model's
    ``data_preprocessor`` mean/std, the first ``Resize`` scale), else from
    the paper's constants in ``configs/_base_/xray_constants.py`` (Sec. 2.1).

    Returns:
        dict: ``mean``/``std`` on 0-255 pixels (3 channels), ``size`` as
        ``(height, width)`` and ``source`` of each.
    """
    from mmengine.config import Config
    paper = Config.fromfile(_constants_file())
    out = dict(
        mean=list(paper.xray_mean),
        std=list(paper.xray_std),
        size=tuple(paper.xray_scale[::-1]),  # mmcv's (w, h) -> (h, w)
        source='configs/_base_/xray_constants.py')
    if cfg is None:
        return out
    pre = (cfg.get('model') or {}).get('data_preprocessor') or {}
    if pre.get('mean') is not None and pre.get('std') is not None:
        out.update(mean=list(pre['mean']), std=list(pre['std']))
    resize = _find_dicts(
        _train_loaders(cfg),
        lambda d: str(d.get('type', '')).endswith('Resize') and isinstance(
            d.get('scale'), (list, tuple)))
    if resize:
        out['size'] = tuple(resize[0]['scale'][::-1])
    if pre or resize:
        out['source'] = 'the training config'
    return out


def _train_loaders(cfg) -> list:
    """The ``train_dataloader`` of ``cfg``; a stage-2 config names each
    task's by the path of its dataset config, read where it exists (a
    checkpoint from another machine may name paths absent here)."""
    from mmengine.config import Config
    loader = None if cfg is None else cfg.get('train_dataloader')
    if not (isinstance(loader, Mapping) and loader
            and all(isinstance(v, str) for v in loader.values())):
        return [loader]
    return [
        Config.fromfile(path).get('train_dataloader')
        for path in loader.values() if osp.isfile(path)
    ]


def _find_dicts(node, keep) -> List[dict]:
    """Every dict under ``node`` (nested dicts/lists) for which ``keep``."""
    found = []
    if isinstance(node, Mapping):
        if keep(node):
            found.append(node)
        for value in node.values():
            found += _find_dicts(value, keep)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += _find_dicts(value, keep)
    return found


def _demo_generated(img_path: str) -> bool:
    """Whether ``img_path`` lies in a folder the demo generator wrote."""
    from muscle_mm.testing.generator import _OURS
    folder = osp.dirname(osp.abspath(img_path))
    while folder != osp.dirname(folder):
        if osp.isfile(osp.join(folder, _OURS)):
            return True
        folder = osp.dirname(folder)
    return False


def count_training_images(cfg) -> Tuple[Dict[str, int], bool]:
    """Images per Table 1 key that ``cfg``'s training datasets list here,
    and whether they are the synthetic demo data.

    The card states what the run read, not the paper's counts. Returns
    ``({}, False)`` (with a warning) where the data cannot be read here,
    e.g. when exporting on another machine than the one that trained.
    """
    from mmengine.registry import DefaultScope

    from muscle_mm.registry import DATASETS
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    counts: Dict[str, int] = {}
    firsts: List[str] = []
    try:
        with DefaultScope.overwrite_default_scope('muscle_mm'):
            for loader in _train_loaders(cfg):
                if not isinstance(loader, Mapping) or 'dataset' not in loader:
                    continue
                ds_cfg = dict(loader['dataset'])
                if 'pipeline' in ds_cfg:  # reading the list is enough
                    ds_cfg['pipeline'] = []
                dataset = DATASETS.build(ds_cfg)
                for i in range(len(dataset)):
                    info = dataset.get_data_info(i)
                    key = info.get('source')
                    if key not in TABLE1:
                        raise KeyError(f'item {i} has no Table 1 source')
                    if key not in counts:
                        firsts.append(info['img_path'])
                    counts[key] = counts.get(key, 0) + 1
    except Exception as err:  # data absent here: the card says so
        warnings.warn('The model card lists no counted images: the training '
                      f'data could not be read here ({type(err).__name__}: '
                      f'{err}).')
        return {}, False
    return counts, bool(firsts) and all(map(_demo_generated, firsts))


def to_timm(backbone: Dict[str, torch.Tensor],
            depth: Optional[int] = None,
            prefix: str = 'backbone.') -> Tuple[Dict[str, torch.Tensor], str]:
    """Map a plain ResNet backbone to timm's ``resnet{depth}`` keys.

    Args:
        backbone (dict): Backbone state dict, keys with ``prefix``.
        depth (int, optional): ResNet depth, guessed when omitted.
        prefix (str): Prefix to strip. Defaults to ``'backbone.'``.

    Returns:
        tuple: The state dict (names and shapes checked against
        ``timm.create_model(arch, num_classes=0)``) and ``arch``.
    """
    import timm
    bare = to_torchvision(backbone, depth, prefix)  # same names, checked
    arch = f'resnet{depth or _guess_depth(bare)}'
    with torch.device('meta'):  # names and shapes only: no init cost
        reference = timm.create_model(arch, num_classes=0).state_dict()
    if set(bare) != set(reference) or any(bare[k].shape != reference[k].shape
                                          for k in bare):
        diff = sorted(set(bare) ^ set(reference))[:5]
        raise KeyError(f'The backbone does not match timm {arch} '
                       f'(timm {timm.__version__}); differing keys: {diff}.')
    return bare, arch


def timm_config(arch: str, num_features: int, input_cfg: dict) -> dict:
    """``config.json`` of timm's hub folder for a feature extractor.

    ``num_classes=0`` (no ``fc``): the model returns pooled features. mean
    and std are timm's 0-1 convention, ``input_size`` is ``(C, H, W)`` and
    ``crop_mode='squash'`` with ``crop_pct=1`` resizes without keeping the
    aspect ratio, as the training pipeline does (``keep_ratio=False``).

    Args:
        arch (str): timm architecture, e.g. ``'resnet18'``.
        num_features (int): Channels of the pooled features.
        input_cfg (dict): As :func:`xray_input_config` returns.
    """
    height, width = input_cfg['size']
    return dict(
        architecture=arch,
        num_classes=0,
        num_features=num_features,
        global_pool='avg',
        pretrained_cfg=dict(
            custom_load=False,
            input_size=[3, height, width],
            fixed_input_size=False,
            interpolation='bilinear',
            crop_pct=1.0,
            crop_mode='squash',
            mean=[m / 255 for m in input_cfg['mean']],
            std=[s / 255 for s in input_cfg['std']],
            num_classes=0,
            pool_size=[-(-height // 32), -(-width // 32)],
            first_conv='conv1',
            classifier='fc'))


def guess_stage(cfg) -> Optional[str]:
    """``mdmoco``, ``muscle`` or ``muscle_minus`` from a training config, or
    None if it is none of the study's pre-training stages."""
    if cfg is None:
        return None
    if (cfg.get('model') or {}).get('type') == 'XrayMoCo':
        return 'mdmoco'
    if (cfg.get('train_cfg') or {}).get('type') == 'MultiTaskCLLoop':
        l2sp = _find_dicts(
            cfg.get('custom_hooks'), lambda d: d.get('type') == 'L2SPHook')
        return 'muscle' if l2sp else 'muscle_minus'
    return None


def training_datasets(cfg, stage: Optional[str]) -> List[str]:
    """Table 1 keys of the datasets a config trains on (its dataset types),
    else those of ``stage`` (stage 1: nine; stage 2: the four tasks)."""
    types = {info['type']: key for key, info in TABLE1.items()}
    found = _find_dicts(
        _train_loaders(cfg),
        lambda d: str(d.get('type', '')).split('.')[-1] in types)
    keys = {types[str(d['type']).split('.')[-1]] for d in found}
    if not keys and stage == 'mdmoco':
        keys = set(TABLE1)
    elif not keys and stage in ('muscle', 'muscle_minus'):
        keys = set(TASK_DATASETS.values())
    return [k for k in TABLE1 if k in keys]


def read_report(paths: Sequence[str]) -> str:
    """Markdown of evaluation tables: a ``.md`` file as is, a table ``.json``
    of :func:`muscle_mm.evaluation.tables.write_table` rendered, a folder
    (the study's ``report/``) as its ``table2``, ``table3`` and ``probe``."""
    parts = []
    for path in paths:
        if osp.isdir(path):
            inner = [
                osp.join(path, f'{n}.md')
                for n in ('table2', 'table3', 'probe')
                if osp.isfile(osp.join(path, f'{n}.md'))
            ]
            if not inner:
                raise FileNotFoundError(
                    f'{path}: no table2.md, table3.md or probe.md in this '
                    'folder; pass the study\'s <work dir>/report folder or '
                    'table files.')
            parts.append(read_report(inner))
        elif path.endswith('.json'):
            with open(path) as f:
                table = json.load(f)
            if not isinstance(table, dict) or not isinstance(
                    table.get('rows'), list):
                raise ValueError(f'{path}: expected a table json with '
                                 '"title" and "rows" (a list of records), '
                                 'as the study\'s report/table2.json.')
            parts.append(_records_to_markdown(table))
        elif osp.isfile(path):
            with open(path) as f:
                parts.append(f.read().strip() + '\n')
        else:
            raise FileNotFoundError(f'Report not found: {path}')
    return '\n'.join(parts)


def _records_to_markdown(table: dict) -> str:
    rows = table['rows']
    columns = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        return '-' if v is None else (
            f'{v:.2f}' if isinstance(v, float) else str(v))

    lines = [
        f"**{table.get('title', '')}**", '', '| ' + ' | '.join(columns) + ' |',
        '|' + '|'.join(['---'] * len(columns)) + '|'
    ]
    lines += [
        '| ' + ' | '.join(cell(r.get(c)) for c in columns) + ' |' for r in rows
    ]
    lines += [''] + list(table.get('notes') or [])
    return '\n'.join(lines).strip() + '\n'


def model_card(arch: str,
               num_features: int,
               stage: Optional[str],
               stage_source: str,
               input_cfg: dict,
               datasets: Sequence[str],
               source: str,
               meta: Optional[Mapping] = None,
               config: Optional[str] = None,
               train_cfg: Optional[Mapping] = None,
               report: str = '',
               folder: bool = True,
               counts: Optional[Mapping[str, int]] = None,
               synthetic: bool = False) -> str:
    """The Markdown model card (with the hub's YAML header for a folder).

    ``counts`` are the images per Table 1 key the run trained on, as
    :func:`count_training_images` finds them (empty: not counted here);
    ``synthetic`` says they are the demo generator's stand-ins.
    """
    meta = meta or {}
    counts = counts or {}
    depth = arch[len('resnet'):]
    name = f'{INIT_NAMES[stage]} ' if stage else ''
    saved_at = ''.join(f', {word} {meta[key]}'
                       for key, word in (('epoch', 'epoch'), ('iter',
                                                              'iteration'))
                       if meta.get(key) is not None)
    mean, std = input_cfg['mean'], input_cfg['std']
    height, width = input_cfg['size']
    lines = []
    if folder:
        lines += [
            '---', 'library_name: timm', 'pipeline_tag: image-feature-'
            'extraction', 'tags:', '- timm', '- image-feature-extraction',
            '- x-ray', '- muscle', 'license: other',
            'license_name: training-data-terms', '---', ''
        ]
    lines += [
        f'# {name}ResNet-{depth} backbone for X-ray images',
        '',
        'Backbone pre-trained by muscle_mm, a reproduction of *MUSCLE: '
        'Multi-task Self-supervised Continual Learning to Pre-train Deep '
        'Models for X-ray Images of Multiple Body Parts* (Liao et al.). '
        'It has no classifier: it returns pooled features '
        f'({num_features} values per image).',
        '',
        '## Training',
        '',
        f'- Stage: {STAGE_TITLES.get(stage, "not known")} ({stage_source}).',
        f'- Source checkpoint: `{osp.basename(source)}`{saved_at}.',
    ]
    if config:
        lines.append(f'- Config: `{config}`.')
    elif meta.get('experiment_name'):
        lines.append(f'- Run: `{meta["experiment_name"]}` (its config is '
                     'saved in the source checkpoint).')
    bn = meta.get('backbone_bn') or (meta.get('source_meta')
                                      or {}).get('backbone_bn')
    if bn:
        images = ', '.join(f'{t} {n}'
                           for t, n in bn.get('images_per_task', {}).items())
        lines.append(
            '- BatchNorm statistics: re-estimated after training with the '
            f'weights fixed ({bn.get("method")}, {bn.get("geometry")} '
            f'geometry; training images per task: {images}), not those of '
            'the task trained last.')
    if train_cfg:
        lines.append('- Training loop: ' +
                     ', '.join(f'{k}={v}'
                               for k, v in sorted(train_cfg.items())) + '.')
    lines += [
        '', '## Input', '',
        f'- One grey channel replicated to 3 channels, resized to '
        f'{height} x {width} (height x width) without keeping the '
        f'aspect ratio (from {input_cfg["source"]}).',
        f'- Normalisation: z-score on 0-255 pixels, mean '
        f'{mean[0]:g}, std {std[0]:g}; in timm\'s 0-1 convention mean '
        f'{mean[0] / 255:.6f}, std {std[0] / 255:.6f} '
        '(`config.json` carries them).',
        '- Grey levels as muscle_mm reads them: 8-bit images as they are; '
        '16-bit PNG and DICOM stretched per image from their minimum to '
        'their maximum onto 0-255; DICOM MONOCHROME1 inverted. Feed 16-bit '
        'files mapped the same way (PIL\'s `convert(\'RGB\')` clips '
        'them).', '', '## Use', ''
    ]
    if folder:
        lines += [
            '```python', 'import timm', 'model = timm.create_model('
            "'local-dir:/path/to/this/folder', pretrained=True)",
            'cfg = timm.data.resolve_data_config(model=model)  # '
            'mean/std/size above', '# or, by architecture name (no '
            'classifier: num_classes=0)', 'model = timm.create_model('
            f"'{arch}', pretrained=True, num_classes=0,",
            "    pretrained_cfg_overlay=dict(file='/path/to/this/folder/"
            f"{WEIGHTS_NAME}'))", '```', ''
        ]
    else:
        lines += [
            'See `docs/mdmoco.md` of muscle_mm for loading the file '
            'in OpenMMLab or torchvision.', ''
        ]
    lines += ['## Training data', '']
    if synthetic:
        lines += [
            '**Trained on the synthetic demo data** (`muscle_mm.testing`), '
            'not on the datasets below: these weights show that the '
            'pipeline runs, nothing about X-ray images.', ''
        ]
    if datasets:
        lines += [
            '| dataset | training images counted | paper (Table 1) | '
            'terms |', '|---|---|---|---|'
        ]
        # stage 2 starts from the stage-1 backbone: its data count too
        earlier = []
        if stage in ('muscle', 'muscle_minus'):
            earlier = [k for k in TABLE1 if k not in datasets]
        for key in list(datasets) + earlier:
            terms = DATASET_TERMS[key]
            counted = f'{counts[key]:,}' if key in counts else '-'
            lines.append(f'| {terms["name"]}'
                         f'{" (stage 1 only)" if key in earlier else ""} | '
                         f'{counted} | {TABLE1[key]["counts"]["train"]:,} | '
                         f'{terms["licence"]} <{terms["url"]}> |')
        if not counts:
            lines += [
                '', '"-": the training data could not be read where this '
                'card was written, so the images were not counted.'
            ]
        elif earlier:
            lines += [
                '', '"-": stage 1\'s images are counted on the card of its '
                'own backbone.'
            ]
        lines += [
            '', 'The weights derive from these data' +
            (' (stage 2 starts from the MD-MoCo backbone of stage 1)'
             if earlier else '') + ': check each dataset\'s terms (several '
            'are non-commercial) before using or redistributing them.'
        ]
    else:
        lines.append('Not known: pass the training config (`--config`).')
    lines += [
        '', '## Evaluation', '',
        report.strip() if report else 'No evaluation was given '
        '(`--report`).', ''
    ]
    return '\n'.join(lines)


def _num_features(state_dict: Dict[str, torch.Tensor]) -> int:
    """Channels of a ResNet's last stage (its first block downsamples)."""
    key = next(
        k for k in state_dict if k.endswith('layer4.0.downsample.1.weight'))
    return int(state_dict[key].shape[0])


def _load_cfg(config: Optional[str], meta: Mapping):
    """The training config: ``config`` if given, else the text mmengine's
    runner saved in the checkpoint's ``meta['cfg']``; None if neither."""
    from mmengine.config import Config
    if config:
        if not osp.isfile(config):
            raise FileNotFoundError(f'Config not found: {config}')
        return Config.fromfile(config)
    text = meta.get('cfg')
    if not isinstance(text, str):
        return None
    try:
        return Config.fromstring(text, '.py')
    except Exception as e:  # a config that no longer parses: say so
        warnings.warn(f'The checkpoint\'s saved config does not parse '
                      f'({type(e).__name__}: {e}); pass --config.')
        return None


def export(src: str,
           dst: str,
           fmt: str = 'openmmlab',
           source_prefix: str = QUERY_PREFIX,
           depth: Optional[int] = None,
           stage: Optional[str] = None,
           config: Optional[str] = None,
           report: Sequence[str] = (),
           card: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Write the backbone of checkpoint ``src`` in format ``fmt``.

    Args:
        src (str): A stage-1 / stage-2 (or any mmengine) checkpoint.
        dst (str): A file for ``openmmlab``/``torchvision``; a folder for
            ``timm``/``hf`` (``model.safetensors``, ``config.json``,
            ``MODEL_CARD.md`` and the same card as the hub's ``README.md``;
            other files in it are kept).
        fmt (str): One of :data:`FORMATS`.
        source_prefix (str): Prefix of the backbone inside ``src``.
        depth (int, optional): ResNet depth, guessed when omitted.
        stage (str, optional): ``mdmoco``, ``muscle`` or ``muscle_minus``;
            read from the training config when omitted.
        config (str, optional): Training config; defaults to the one the
            checkpoint's ``meta`` holds.
        report (Sequence[str]): Evaluation tables for the model card.
        card (str, optional): Also write the model card here (the folder
            formats always write ``MODEL_CARD.md``).

    Returns:
        dict: The state dict that was written.
    """
    if fmt not in FORMATS:
        raise ValueError(f'Unknown export format "{fmt}"; choose one of '
                         f'{", ".join(FORMATS)}.')
    if stage is not None and stage not in STAGE_BACKBONES:
        raise ValueError(f'Unknown stage "{stage}"; choose one of '
                         f'{", ".join(STAGE_BACKBONES)}.')
    if not osp.isfile(src):
        raise FileNotFoundError(f'Checkpoint not found: {src}')
    if config and not osp.isfile(config):
        raise FileNotFoundError(f'Config not found: {config}')
    folder = fmt in FOLDER_FORMATS
    if folder and osp.isfile(dst):
        raise FileExistsError(f'{dst} is a file; --format {fmt} writes a '
                              f'folder ({WEIGHTS_NAME}, {CONFIG_NAME}, '
                              f'{CARD_NAME}). Give a folder path.')
    if not folder and osp.isdir(dst):
        raise IsADirectoryError(f'{dst} is a folder; --format {fmt} writes '
                                'one file. Give a file path, e.g. '
                                f'{osp.join(dst, "backbone.pth")}.')
    if not folder and card is None:
        return export_backbone(
            src,
            dst,
            source_prefix,
            torchvision=fmt == 'torchvision',
            depth=depth)

    # everything the card needs is checked before anything is written
    report_text = read_report(report) if report else ''
    checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    cfg = _load_cfg(config, meta)
    guessed = guess_stage(cfg)
    if stage and guessed and stage != guessed:
        raise ValueError(f'--stage {stage} contradicts the training config, '
                         f'which is a {guessed} run ({config or src}); drop '
                         '--stage or pass the right --config.')
    stage_source = ('given' if stage else 'from the training config'
                    if guessed else 'not given and not in the checkpoint')
    stage = stage or guessed
    input_cfg = xray_input_config(cfg)
    if folder:
        backbone = extract_backbone(
            _state_dict_of(checkpoint, src), source_prefix, source=src)
        out, arch = to_timm(backbone, depth)
    else:
        out = export_backbone(
            src,
            dst,
            source_prefix,
            torchvision=fmt == 'torchvision',
            depth=depth)
        bare = {
            (k[len('backbone.'):] if fmt == 'openmmlab' else k): v
            for k, v in out.items()
        }
        arch = f'resnet{depth or _guess_depth(bare)}'
    counts, synthetic = count_training_images(cfg) if cfg is not None \
        else ({}, False)
    text = model_card(
        arch,
        _num_features(out),
        stage,
        stage_source,
        input_cfg,
        training_datasets(cfg, stage),
        src,
        meta,
        config=config,
        train_cfg=None if cfg is None else cfg.get('train_cfg'),
        report=report_text,
        folder=folder,
        counts=counts,
        synthetic=synthetic)
    if folder:
        from safetensors.torch import save as to_safetensors
        os.makedirs(dst, exist_ok=True)
        # weights first: a crash leaves at most an old config beside them
        atomic_write(to_safetensors(out), osp.join(dst, WEIGHTS_NAME))
        atomic_write(
            json.dumps(
                timm_config(arch, _num_features(out), input_cfg), indent=2) +
            '\n', osp.join(dst, CONFIG_NAME))
        atomic_write(text, osp.join(dst, CARD_NAME))
        atomic_write(text, osp.join(dst, HUB_CARD_NAME))
    if card:
        atomic_write(text, card)
    return out


__all__ = [
    'FORMATS', 'export', 'to_timm', 'timm_config', 'xray_input_config',
    'guess_stage', 'training_datasets', 'count_training_images',
    'model_card', 'read_report'
]
