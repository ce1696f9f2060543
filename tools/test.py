# Copyright (c) muscle_mm contributors. All rights reserved.
"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from muscle_mm.utils import register_all_modules, setup_cpu_distributed
from muscle_mm.utils.checkpoint_checks import check_checkpoint_fits


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', help='dump the metrics to this json file')
    parser.add_argument(
        '--dump',
        help='dump the predictions to this .pkl file (mmengine DumpResults), '
        'e.g. to compare with tools/infer.py')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint "{args.checkpoint}" does not exist; pass the .pth '
            'written by tools/train.py (e.g. work_dirs/<config>/epoch_N.pth).')
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg, args.launcher)

    runner = Runner.from_cfg(cfg)
    # the runner loads `load_from` non-strictly: a checkpoint of another
    # model would leave random layers and still print figures
    check_checkpoint_fits(runner.model, args.checkpoint)
    if args.dump:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.dump))
    metrics = runner.test()
    if args.out and runner.rank == 0:
        import mmengine
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    main()
