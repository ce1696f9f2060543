# Runtime settings shared by every muscle_mm config.
default_scope = 'muscle_mm'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # checkpoints are written atomically (temp file + rename), so a run killed
    # while saving resumes from the last complete one (muscle_mm.utils.fileio)
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        backend_args=dict(backend='muscle_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # each training sample's random flips from (seed, epoch, sample), so a
    # resumed run, persistent workers included, draws what an uninterrupted
    # one draws, on any number of workers and processes
    augmentation_seed=dict(type='AugmentationSeedHook'),
    # under DDP every rank keeps its own BatchNorm statistics; they are
    # averaged before every validation, test and checkpoint
    sync_buffers=dict(type='BufferSyncHook'),
    # world size, iterations and batches in every checkpoint: a resume on
    # another number of GPUs stops instead of bending the LR schedule
    run_geometry=dict(type='RunGeometryHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # CPU-only runs switch to gloo in tools/train.py (muscle_mm.utils.dist)
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
