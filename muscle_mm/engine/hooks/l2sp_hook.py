# Copyright (c) muscle_mm contributors. All rights reserved.
"""L2-SP cross-task memorization of MUSCLE stage 2 (Eq. 2, Sec. 2.2)."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import CheckpointLoader

from muscle_mm.registry import HOOKS

# Defaults, since MUSCLE gives no value for alpha and lambda. L2-SP (Li et al.,
# ICML 2018, ref. [15]) uses Omega = a/2 ||w_S - w_S^0||^2 + b/2 ||w_new||^2
# with a = 0.1, b = 0.01, its ridge being on the new layers; Eq. 2 moves the
# ridge onto the backbone. Matching term by term, lam * alpha = a / 2 and
# lam * (1 - alpha) = b / 2, gives (the ridge then equals SGD weight decay
# 2 * lam * (1 - alpha) = b = 0.01):
L2SP_A, L2SP_B = 0.1, 0.01
DEFAULT_LAM = (L2SP_A + L2SP_B) / 2  # 0.055
DEFAULT_ALPHA = L2SP_A / (L2SP_A + L2SP_B)  # 0.909

CKPT_KEY = 'l2sp_anchor'


@HOOKS.register_module()
class L2SPHook(Hook):
    r"""Add the gradient of MUSCLE's L2-SP regulariser (Eq. 2) to the backbone.

    .. math::
        \lambda \Omega(w) = \lambda \left[\alpha \|w - w^0\|_2^2
        + (1 - \alpha) \|w\|_2^2\right]

    ``w0`` is snapshot at every ``before_train_epoch``, i.e. at the start of
    each task-iterate of ``MultiTaskCLLoop`` (``anchor='previous'``, the
    paper's "pre-trained by previous iterates"), or once, from the weights at
    the start of training or from ``anchor_ckpt`` (``anchor='pretrained'``,
    the stage-1 weights).

    The gradient ``2λ[α(w - w0) + (1 - α)w]`` is added to ``param.grad`` by an
    optimizer step pre-hook with ``torch._foreach`` ops, without autograd:

    - it runs once per real optimizer step, so with ``accumulative_counts=k``
      it is added once to the accumulated (averaged) task gradient, as if Ω
      were part of the averaged loss;
    - it runs after the wrapper's gradient clipping, like the optimizer's own
      weight decay that it replaces: clipping bounds the data gradient only
      (``AmpOptimWrapper`` has unscaled the gradients by then, and skips the
      step, hence the hook, on overflow);
    - under DDP the task gradients are already all-reduced; Ω is identical on
      every rank (same weights, same anchor), so adding it locally is exact;
    - parameters with ``requires_grad=False`` or without a gradient in this
      step (unused by the active task) are skipped, as torch optimizers skip
      them for weight decay.

    The ridge term replaces weight decay, so the optimizer must not decay the
    backbone too: set ``paramwise_cfg=dict(custom_keys={'backbone':
    dict(decay_mult=0.)})``. The hook raises at ``before_train`` if a
    trainable backbone parameter still has ``weight_decay > 0``.

    ``train/l2sp_loss`` (λΩ before the step) is logged every optimizer step.

    Args:
        alpha (float): α of Eq. 2, weight of the distance to ``w0`` (1 - α
            weighs the ridge term). Defaults to 0.909 (see ``DEFAULT_ALPHA``).
        lam (float): λ, overall strength. Defaults to 0.055.
        params (str): ``'weights'`` regularises conv / FC weights only (every
            parameter with ≥ 2 dims; BN and biases are 1-D), as L2-SP does;
            ``'all'`` regularises every backbone parameter. Defaults to
            ``'weights'``.
        anchor (str): ``'previous'`` or ``'pretrained'``. Defaults to
            ``'previous'``.
        anchor_ckpt (str, optional): Checkpoint holding the stage-1 weights for
            ``anchor='pretrained'``; without it the weights at the start of
            training are used, and saved in every checkpoint for resuming.
        anchor_prefix (str): Prefix of the backbone keys in ``anchor_ckpt``.
            Defaults to ``'backbone.'``.
        module (str): Name of the regularised sub-module of the model.
            Defaults to ``'backbone'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 alpha: float = DEFAULT_ALPHA,
                 lam: float = DEFAULT_LAM,
                 params: str = 'weights',
                 anchor: str = 'previous',
                 anchor_ckpt: Optional[str] = None,
                 anchor_prefix: str = 'backbone.',
                 module: str = 'backbone') -> None:
        if not 0. <= alpha <= 1.:
            raise ValueError(f'L2SPHook: `alpha` must lie in [0, 1], got '
                             f'{alpha}.')
        if lam < 0:
            raise ValueError(f'L2SPHook: `lam` must be >= 0, got {lam}.')
        if params not in ('weights', 'all'):
            raise ValueError(f"L2SPHook: `params` must be 'weights' or 'all', "
                             f'got {params!r}.')
        if anchor not in ('previous', 'pretrained'):
            raise ValueError(f"L2SPHook: `anchor` must be 'previous' or "
                             f"'pretrained', got {anchor!r}.")
        if anchor_ckpt is not None and anchor != 'pretrained':
            raise ValueError("L2SPHook: `anchor_ckpt` needs anchor="
                             f"'pretrained', but anchor={anchor!r}.")
        self.alpha = alpha
        self.lam = lam
        self.params = params
        self.anchor = anchor
        self.anchor_ckpt = anchor_ckpt
        self.anchor_prefix = anchor_prefix
        self.module = module

        self._w0: Dict[str, torch.Tensor] = {}
        # per optimizer: (params, anchors, buffers for w - w0) that it holds
        self._targets: Dict[int, Tuple[List[nn.Parameter], List[torch.Tensor],
                                       List[torch.Tensor]]] = {}
        self._handles: list = []
        self._last_value: Optional[torch.Tensor] = None

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
        """Parameters of Eq. 2, trainable or not, by name."""
        return {
            name: p
            for name, p in backbone.named_parameters()
            if self.params == 'all' or p.ndim >= 2
        }

    @staticmethod
    def _optimizers(runner) -> List[torch.optim.Optimizer]:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return [w.optimizer for w in wrapper.values()]
        if isinstance(wrapper, OptimWrapper):
            return [wrapper.optimizer]
        raise TypeError('L2SPHook needs a built OptimWrapper or '
                        f'OptimWrapperDict, got {type(wrapper).__name__}.')

    def _check_weight_decay(self, runner, backbone: nn.Module) -> None:
        names = {id(p): n for n, p in backbone.named_parameters()}
        for optimizer in self._optimizers(runner):
            for i, group in enumerate(optimizer.param_groups):
                if not group.get('weight_decay', 0):
                    continue
                decayed = [
                    names[id(p)] for p in group['params']
                    if id(p) in names and p.requires_grad
                ]
                if decayed:
                    raise ValueError(
                        f'L2SPHook applies the ridge term of Eq. 2 to '
                        f'`{self.module}`, but {type(optimizer).__name__} '
                        f'param group {i} also decays '
                        f'{len(decayed)} of its parameters (e.g. '
                        f'{self.module}.{decayed[0]}) with '
                        f"weight_decay={group['weight_decay']}, which would "
                        'apply ridge twice. Add to the optim_wrapper: '
                        "paramwise_cfg=dict(custom_keys={'"
                        f"{self.module}': dict(decay_mult=0.)}}).")

    def _snapshot(self, backbone: nn.Module) -> None:
        self._w0 = {
            n: p.detach().clone()
            for n, p in self._selected(backbone).items()
        }

    def _load_anchor_ckpt(self, backbone: nn.Module) -> None:
        ckpt = CheckpointLoader.load_checkpoint(
            self.anchor_ckpt, map_location='cpu')
        state = ckpt.get('state_dict', ckpt)
        selected = self._selected(backbone)
        prefix = self.anchor_prefix
        w0 = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
        missing = sorted(set(selected) - set(w0))
        if missing:
            raise KeyError(
                f'L2SPHook: anchor_ckpt {self.anchor_ckpt!r} lacks '
                f'{len(missing)} backbone weights under prefix {prefix!r}, '
                f'e.g. {prefix}{missing[0]}. Check `anchor_prefix`.')
        self._w0 = {
            n: w0[n].to(device=p.device, dtype=p.dtype)
            for n, p in selected.items()
        }

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
            params, anchors = [p for p, _ in held], [a for _, a in held]
            # w - w0 goes into buffers kept for the epoch: allocating them at
            # every step costs more than the arithmetic (page faults on CPU)
            diffs = [torch.empty_like(a) for a in anchors]
            self._targets[id(optimizer)] = (params, anchors, diffs)

    @torch.no_grad()
    def _pre_step(self, optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: grads += ∇(λΩ)."""
        if id(optimizer) not in self._targets:
            return
        ws, w0s, diffs = self._targets[id(optimizer)]
        if any(p.grad is None for p in ws):
            live = [i for i, p in enumerate(ws) if p.grad is not None]
            if not live:
                return
            ws, w0s, diffs = ([x[i] for i in live] for x in (ws, w0s, diffs))
        grads = [p.grad for p in ws]
        value = ws[0].new_zeros(())
        if self.alpha > 0:
            torch._foreach_copy_(diffs, ws)
            torch._foreach_sub_(diffs, w0s)
            torch._foreach_add_(grads, diffs, alpha=2 * self.lam * self.alpha)
            value += self.alpha * torch.stack(
                torch._foreach_norm(diffs)).square().sum()
        if self.alpha < 1:
            ridge = 1 - self.alpha
            torch._foreach_add_(grads, ws, alpha=2 * self.lam * ridge)
            value += ridge * torch.stack(
                torch._foreach_norm(ws)).square().sum()
        self._last_value = self.lam * value

    # -- hook points ------------------------------------------------------
    def before_train(self, runner) -> None:
        self._remove_handles()
        backbone = self._backbone(runner)
        self._check_weight_decay(runner, backbone)
        if self.anchor == 'pretrained' and not self._w0:
            # not restored from a resumed checkpoint by after_load_checkpoint
            if self.anchor_ckpt is not None:
                self._load_anchor_ckpt(backbone)
            else:
                self._snapshot(backbone)
        for optimizer in self._optimizers(runner):
            self._handles.append(
                optimizer.register_step_pre_hook(self._pre_step))

    def before_train_epoch(self, runner) -> None:
        if self.anchor == 'previous':
            self._snapshot(self._backbone(runner))
        self._bind(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self._last_value is not None:
            runner.message_hub.update_scalar('train/l2sp_loss',
                                             self._last_value.item())
            self._last_value = None

    def after_train(self, runner) -> None:
        self._remove_handles()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the stage-1 anchor is not in the model any more: keep it for resume
        if self.anchor == 'pretrained' and self.anchor_ckpt is None:
            checkpoint[CKPT_KEY] = {n: t.cpu() for n, t in self._w0.items()}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if (self.anchor == 'pretrained' and self.anchor_ckpt is None
                and CKPT_KEY in checkpoint):
            selected = self._selected(self._backbone(runner))
            saved = checkpoint[CKPT_KEY]
            missing = sorted(set(selected) - set(saved))
            if missing:
                raise KeyError(
                    f'L2SPHook: the checkpoint\'s {CKPT_KEY!r} lacks '
                    f'{len(missing)} anchors of the current backbone, e.g. '
                    f'{missing[0]}: was it saved with another backbone or '
                    f'`params` setting (now {self.params!r})?')
            self._w0 = {
                n: saved[n].to(device=p.device, dtype=p.dtype)
                for n, p in selected.items()
            }

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
