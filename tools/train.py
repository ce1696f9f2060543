# Copyright (c) muscle_mm contributors. All rights reserved.
"""Train a muscle_mm config: ``python tools/train.py CONFIG [options]``."""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from muscle_mm.engine.optimizers import enable_amp
from muscle_mm.utils import register_all_modules, setup_cpu_distributed
from muscle_mm.utils.resume import (check_resume_file,
                                    find_resumable_checkpoint)
from muscle_mm.visualization import enable_tensorboard


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training: float16 with '
        'dynamic loss scaling (mmengine AmpOptimWrapper) on GPUs, bfloat16 '
        'autocast (CPUAmpOptimWrapper) on CPU-only machines')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='also log the scalars (losses, LR, metrics) to TensorBoard '
        '(mmengine TensorboardVisBackend): event files in '
        '<work_dir>/<timestamp>/vis_data/; needs the tensorboard package')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--test-last',
        action='store_true',
        help='after training, evaluate the final model on the test split '
        '(as tools/test.py does with the last checkpoint, without starting '
        'a second process)')
    parser.add_argument(
        '--test-out',
        help='with --test-last, dump the test metrics to this json file')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.test_out and not args.test_last:
        parser.error('--test-out needs --test-last')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge CLI arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir is determined in this priority: CLI > config > config name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        enable_amp(cfg)

    if args.tensorboard:
        try:
            enable_tensorboard(cfg)
        except ImportError as e:
            raise SystemExit(f'train.py: {e}')

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # after --cfg-options, which may move the work dir
    if args.resume == 'auto':
        # mmengine would trust `last_checkpoint` blindly; take the newest
        # intact checkpoint instead (none: start from the beginning).
        checkpoint = find_resumable_checkpoint(cfg.work_dir)
        cfg.resume = checkpoint is not None
        cfg.load_from = checkpoint
    elif args.resume is not None:
        check_resume_file(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def build_runner(args: argparse.Namespace) -> Runner:
    """The runner of ``args.config`` with the CLI arguments merged in."""
    register_all_modules(init_default_scope=False)

    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    # A no-op on GPUs; on CPU-only nodes it starts gloo (see its docstring).
    setup_cpu_distributed(cfg, args.launcher)

    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from muscle_mm.registry import RUNNERS
    return RUNNERS.build(cfg)


def main() -> None:
    args = parse_args()
    runner = build_runner(args)
    runner.train()
    if args.test_last:
        # the weights of the last checkpoint are the ones in memory (a
        # resumed, finished run reloads them and trains no further)
        metrics = runner.test()
        if args.test_out and runner.rank == 0:
            import mmengine
            mmengine.dump(metrics, args.test_out)


if __name__ == '__main__':
    main()
