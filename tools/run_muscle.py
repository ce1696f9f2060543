# Copyright (c) muscle_mm contributors. All rights reserved.
"""Run the whole MUSCLE study with one command, resumably.

Demo (synthetic data written on the fly, ResNet-18, CPU, ~15 min):
    python tools/run_muscle.py --demo
Paper scale (the nine datasets under data/ as README.md shows, 8 GPUs):
    python tools/run_muscle.py --scale paper --backbones r18 r50 --gpus 8 \
        --imagenet r18=data/pretrained/resnet18_imagenet.pth \
        --imagenet r50=data/pretrained/resnet50_imagenet.pth
Re-running skips finished stages and resumes an interrupted one.
The splits the literature reports on (each release's own train/test) instead
of the paper's re-splits, in work_dirs/muscle_<scale>_official:
    python tools/run_muscle.py --demo --protocol official
--exclude-leaks pre-trains stage 1 without the images the leakage audit
finds in a task's val/test split (the report says which data it used).
"""
import argparse
import os
import sys

from muscle_mm.apis import MuscleStudy, StudySettings, build_report
from muscle_mm.apis.study import INITS, TASKS, default_work_dir
from muscle_mm.metainfo import PROTOCOL_ENV, PROTOCOLS
from muscle_mm.utils import register_all_modules
from muscle_mm.visualization import check_tensorboard
from muscle_mm.utils.process import FolderInUseError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the MUSCLE study')
    parser.add_argument(
        '--demo',
        action='store_true',
        help='shorthand for --scale demo (the default)')
    parser.add_argument(
        '--scale', choices=['demo', 'paper'], default='demo')
    parser.add_argument(
        '--work-dir',
        help='default: work_dirs/muscle_<scale> (muscle_<scale>_official '
        'with --protocol official)')
    parser.add_argument(
        '--protocol',
        choices=PROTOCOLS,
        default='paper',
        help="'paper': the paper's re-splits (Tables 2/3 as published); "
        "'official': each release's own train/test, val carved from train "
        '(tools/dataset_converters/make_splits.py --protocol official)')
    parser.add_argument(
        '--backbones', nargs='+', default=['r18'], choices=['r18', 'r50'])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS),
                        choices=TASKS)
    parser.add_argument('--inits', nargs='+', default=list(INITS),
                        choices=INITS)
    parser.add_argument(
        '--imagenet',
        nargs='+',
        default=[],
        metavar='BACKBONE=PATH',
        help='local ImageNet weights per backbone (nothing is downloaded)')
    parser.add_argument(
        '--gpus', type=int, default=1, help='processes (GPUs) per run')
    parser.add_argument(
        '--jobs',
        type=int,
        default=None,
        help='runs at a time, each on its own --gpus GPUs (or share of the '
        'CPU threads); a run starts once the backbone it loads is written. '
        'Default: 2 at demo scale on 2+ CPU cores, else 1')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='also log every run to TensorBoard (tools/train.py '
        '--tensorboard); needs the tensorboard package')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='override settings of every run\'s config, as tools/train.py '
        '--cfg-options (e.g. train_cfg.max_epochs=1 for a smoke test of '
        'the fine-tunes); finished stages are not redone')
    parser.add_argument(
        '--exclude-leaks',
        action='store_true',
        help='run the leakage audit (tools/misc/audit_overlap.py) first '
        "and leave the stage-1 images it finds in a task's val/test split "
        'out of MD-MoCo (configs/muscle/mdmoco_*_noleak.py); default: '
        "the paper's union. The report says which was used")
    parser.add_argument(
        '--preflight',
        action='store_true',
        help='train nothing: check data, configs, initialisation files, '
        'schedules, disk and memory of this run, print one table, exit 1 '
        'if any check fails')
    parser.add_argument(
        '--skip-memory',
        action='store_true',
        help='with --preflight: do not time one training step per stage')
    return parser.parse_args()


def study_settings(args: argparse.Namespace) -> StudySettings:
    """The study's settings from the command line."""
    scale = 'demo' if args.demo else args.scale
    imagenet = {}
    for item in args.imagenet:
        if '=' not in item:
            raise SystemExit(f'--imagenet expects BACKBONE=PATH, got "{item}"')
        key, path = item.split('=', 1)
        imagenet[key] = path
    return StudySettings(
        work_dir=args.work_dir or default_work_dir(scale, args.protocol),
        scale=scale,
        backbones=args.backbones,
        tasks=args.tasks,
        inits=args.inits,
        imagenet=imagenet,
        gpus=args.gpus,
        amp=args.amp,
        jobs=args.jobs,
        tensorboard=args.tensorboard,
        cfg_options=args.cfg_options,
        protocol=args.protocol,
        exclude_leaks=args.exclude_leaks)


def main() -> None:
    args = parse_args()
    settings = study_settings(args)
    # what this process builds itself (--preflight) reads the same splits
    os.environ[PROTOCOL_ENV] = args.protocol
    if args.tensorboard:
        try:  # before the first run, not in each of them
            check_tensorboard()
        except ImportError as e:
            raise SystemExit(f'run_muscle: {e}')
    register_all_modules(init_default_scope=False)
    study = MuscleStudy(settings)
    try:
        if args.preflight:
            from muscle_mm.apis.preflight import Preflight
            study.prepare_data()  # demo data (seconds); nothing at paper scale
            checks = Preflight(study, amp=args.amp,
                               memory=not args.skip_memory).run()
            print(Preflight.table(checks))
            sys.exit(1 if any(c.failed for c in checks) else 0)
        results = study.run()
    except (FolderInUseError, FileNotFoundError) as e:
        # a second run on the same folders, a missing weight file: the
        # message says it all, a traceback would only hide it
        raise SystemExit(f'run_muscle: {e}')
    build_report(study.work_dir, results, probe=study.probe_inputs(),
                 demo=settings.scale == 'demo', protocol=args.protocol,
                 leakage=study.leakage_info())


if __name__ == '__main__':
    main()
