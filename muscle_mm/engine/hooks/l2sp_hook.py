# Copyright (c) muscle_mm contributors. All rights reserved.
"""L2-SP cross-task memorization of MUSCLE stage 2 (Eq. 2, Sec. 2.2)."""
import logging
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict

from muscle_mm.registry import HOOKS
from .l2sp_anchor import (load_anchor_ckpt, restore_anchor, select_params,
                          snapshot)

CKPT_KEY = 'l2sp_anchor'
LOG_KEY = 'train/l2sp'


@HOOKS.register_module()
class L2SPHook(Hook):
    r"""L2-SP regulariser of MUSCLE (Eq. 2, Sec. 2.2) on the shared backbone.

    .. math::
        \lambda \Omega(w) = \lambda \alpha \|w - w^0\|_2^2
        + \lambda (1 - \alpha) \|w\|_2^2

    The ridge term is the optimizer's weight decay (``2λ(1 - α)``), the same
    that MUSCLE-- applies; the hook adds the distance term's gradient
    ``2λα(w - w0)`` to the gradients before each optimizer step and logs
    ``train/l2sp`` (its value) on the LoggerHook's iterations. See
    ``docs/l2sp.md``.

    Args:
        distance_weight (float): λα, the weight of ``||w - w0||²`` in the loss.
        params (str): ``'weights'``: the distance term covers conv / FC weights
            (parameters with ≥ 2 dims), as L2-SP; ``'all'``: every parameter
            of ``module``. Defaults to ``'weights'``.
        anchor (str): w0 is the backbone at the start of each task-iterate
            (``'previous'``, the paper's) or at the start of training /
            from ``anchor_ckpt`` (``'pretrained'``). Defaults to
            ``'previous'``.
        anchor_ckpt (str, optional): Checkpoint with the stage-1 weights for
            ``anchor='pretrained'``. Defaults to None.
        anchor_prefix (str): Prefix of the backbone keys in ``anchor_ckpt``.
            Defaults to ``'backbone.'``.
        module (str): Name of the regularised sub-module of the model.
            Defaults to ``'backbone'``.
    """

    priority = 'NORMAL'  # before LoggerHook reads the logged value

    def __init__(self,
                 distance_weight: float,
                 params: str = 'weights',
                 anchor: str = 'previous',
                 anchor_ckpt: Optional[str] = None,
                 anchor_prefix: str = 'backbone.',
                 module: str = 'backbone') -> None:
        if not distance_weight >= 0:
            raise ValueError('L2SPHook: `distance_weight` (λα of Eq. 2) must '
                             f'be >= 0, got {distance_weight}.')
        if params not in ('weights', 'all'):
            raise ValueError(f"L2SPHook: `params` must be 'weights' or 'all', "
                             f'got {params!r}.')
        if anchor not in ('previous', 'pretrained'):
            raise ValueError(f"L2SPHook: `anchor` must be 'previous' or "
                             f"'pretrained', got {anchor!r}.")
        if anchor_ckpt is not None and anchor != 'pretrained':
            raise ValueError("L2SPHook: `anchor_ckpt` needs anchor="
                             f"'pretrained', but anchor={anchor!r}.")
        self.distance_weight = float(distance_weight)
        self.params = params
        self.anchor = anchor
        self.anchor_ckpt = anchor_ckpt
        self.anchor_prefix = anchor_prefix
        self.module = module

        self._w0: Dict[str, torch.Tensor] = {}
        # per optimizer: the trainable regularised parameters it holds, and
        # their anchors
        self._targets: Dict[int, Tuple[List[nn.Parameter],
                                       List[torch.Tensor]]] = {}
        self._handles: list = []
        self._log_interval = 1

    @property
    def w0(self) -> Dict[str, torch.Tensor]:
        """The anchor of Eq. 2: backbone parameter name -> its w0 (a copy of
        the mapping; empty before training starts)."""
        return dict(self._w0)

    # -- helpers ----------------------------------------------------------
    def _backbone(self, runner) -> nn.Module:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        try:
            return model.get_submodule(self.module)
        except AttributeError:
            raise AttributeError(
                f'L2SPHook regularises `model.{self.module}`, but '
                f'{type(model).__name__} has no such sub-module. Set '
                f'`module=` to the name of the shared backbone.') from None

    def _selected(self, backbone: nn.Module) -> Dict[str, nn.Parameter]:
        return select_params(backbone, self.params)

    @staticmethod
    def _optimizers(runner) -> List[torch.optim.Optimizer]:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return [w.optimizer for w in wrapper.values()]
        if isinstance(wrapper, OptimWrapper):
            return [wrapper.optimizer]
        raise TypeError('L2SPHook needs a built OptimWrapper or '
                        f'OptimWrapperDict, got {type(wrapper).__name__}.')

    def _check_ridge(self, runner, backbone: nn.Module) -> None:
        """Warn if the backbone is left undecayed while the heads are not
        (the setting of the earlier L2SPHook, which applied the ridge itself).
        """
        ours = {id(p) for p in backbone.parameters() if p.requires_grad}
        for optimizer in self._optimizers(runner):
            decay = {True: [], False: []}  # in the backbone: decays
            for g in optimizer.param_groups:
                for p in g['params']:
                    decay[id(p) in ours].append(g.get('weight_decay', 0))
            if decay[True] and max(decay[True]) == 0 and max(
                    decay[False], default=0) > 0:
                print_log(
                    f'L2SPHook: {type(optimizer).__name__} does not decay '
                    f'`{self.module}` but decays other parameters. The '
                    'ridge term of Eq. 2 is the optimizer\'s weight decay '
                    '(MUSCLE-- applies it to every parameter): remove the '
                    f"`decay_mult=0.` of '{self.module}' from paramwise_cfg "
                    'unless you mean alpha=1.',
                    logger='current',
                    level=logging.WARNING)

    def _bind(self, runner) -> None:
        """Pair the trainable regularised parameters with their anchors, per
        optimizer (re-done each epoch: freezing may change)."""
        backbone = self._backbone(runner)
        pairs = {
            id(p): (p, self._w0[n])
            for n, p in self._selected(backbone).items()
            if p.requires_grad and n in self._w0
        }
        self._targets = {}
        for optimizer in self._optimizers(runner):
            held = [
                pairs[id(p)] for g in optimizer.param_groups
                for p in g['params'] if id(p) in pairs
            ]
            self._targets[id(optimizer)] = ([p for p, _ in held],
                                            [a for _, a in held])

    @torch.no_grad()
    def _pre_step(self, optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: grads += 2λα (w - w0)."""
        targets = self._targets.get(id(optimizer))
        if not targets or not self.distance_weight:
            return
        ws, w0s = targets
        if any(p.grad is None for p in ws):
            live = [i for i, p in enumerate(ws) if p.grad is not None]
            if not live:
                return
            ws, w0s = [ws[i] for i in live], [w0s[i] for i in live]
        grads = [p.grad for p in ws]
        # GradScaler (AmpOptimWrapper) unscales the gradients before
        # optimizer.step, except for optimizers that unscale inside their
        # step (fused=True): it then sets `grad_scale`, and the term is
        # scaled like the gradients it joins
        scale = getattr(optimizer, 'grad_scale', None)
        if scale is not None:
            diffs = torch._foreach_sub(ws, w0s)
            torch._foreach_mul_(diffs, scale)
            torch._foreach_add_(grads, diffs, alpha=2 * self.distance_weight)
            return
        # in place on the gradients, no temporaries
        torch._foreach_add_(grads, ws, alpha=2 * self.distance_weight)
        torch._foreach_add_(grads, w0s, alpha=-2 * self.distance_weight)

    @torch.no_grad()
    def _value(self) -> float:
        """λα ||w - w0||² over the regularised trainable parameters."""
        ws = [p for params, _ in self._targets.values() for p in params]
        if not ws:
            return 0.
        w0s = [a for _, anchors in self._targets.values() for a in anchors]
        norms = torch._foreach_norm(torch._foreach_sub(ws, w0s))
        return self.distance_weight * torch.stack(norms).square().sum().item()

    # -- hook points ------------------------------------------------------
    def before_train(self, runner) -> None:
        self._remove_handles()
        backbone = self._backbone(runner)
        self._check_ridge(runner, backbone)
        if self.anchor == 'pretrained' and not self._w0:
            # not restored from a resumed checkpoint by after_load_checkpoint
            selected = self._selected(backbone)
            self._w0 = snapshot(selected) if self.anchor_ckpt is None else \
                load_anchor_ckpt(self.anchor_ckpt, self.anchor_prefix,
                                 selected)
        loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
        self._log_interval = loggers[0].interval if loggers else 1
        for optimizer in self._optimizers(runner):
            self._handles.append(
                optimizer.register_step_pre_hook(self._pre_step))

    def before_train_epoch(self, runner) -> None:
        if self.anchor == 'previous':
            self._w0 = snapshot(self._selected(self._backbone(runner)))
        self._bind(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        # only where LoggerHook may print it (the same test as LoggerHook's)
        if (self.every_n_inner_iters(batch_idx, self._log_interval)
                or self.end_of_epoch(runner.train_dataloader, batch_idx)):
            runner.message_hub.update_scalar(LOG_KEY, self._value())

    def after_train(self, runner) -> None:
        self._remove_handles()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the stage-1 anchor is not in the model any more: keep it for resume
        if self.anchor == 'pretrained' and self.anchor_ckpt is None:
            checkpoint[CKPT_KEY] = {n: t.cpu() for n, t in self._w0.items()}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if (self.anchor == 'pretrained' and self.anchor_ckpt is None
                and CKPT_KEY in checkpoint):
            self._w0 = restore_anchor(checkpoint[CKPT_KEY],
                                      self._selected(self._backbone(runner)),
                                      CKPT_KEY, self.params)

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
