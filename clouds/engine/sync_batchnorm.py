"""BatchNorm over all processes where the original has SyncBatchNorm: DGVFM's light head.

DGVFM's ``LinearHead`` (our :class:`~clouds.modeling.heads.vfmnet.VFMNet`) holds a
``torch.nn.SyncBatchNorm``: with N GPUs its batch statistics cover the N per-GPU batches; on one
GPU mmengine's runner turns it back into a plain BatchNorm. No other layer of its LoRA models
normalises over GPUs: its refinement head has none, and the one SyncBatchNorm of its backbones (in
the CLIP ViT's ``fpn1``) runs only with Rein, whose pyramid is converted too; the CLOUDS models
(detectron2) synchronise none.

:func:`sync_light_head_batchnorm` makes the BatchNorm layers of a :class:`VFMSegmentor`'s light
head normalise over all processes when training runs on several: on GPUs with
``torch.nn.SyncBatchNorm`` itself (the original's layer and kernels); torch implements that for
accelerators only, so CPU processes (gloo) get :class:`CPUSyncBatchNorm`, whose statistics come
from two differentiable all-reduces (sum, then squared deviations): the BatchNorm of the pooled
batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor

__all__ = ["CPUSyncBatchNorm", "convert_batchnorm", "sync_light_head_batchnorm"]


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: the gradient of the sum of every
    process's loss with respect to a tensor that every process's forward used."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        total = grad.clone()
        dist.all_reduce(total, group=ctx.group)
        return total, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the batches of all processes, for CPU tensors (gloo).

    torch's ``nn.SyncBatchNorm`` runs on accelerators only (and DDP refuses it in a CPU model).
    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``. In training mode with an
    initialised process group of several processes, an input (B, C, ...) is normalised with the
    mean and biased variance over every process's batch, the running statistics are updated
    with the unbiased variance over all of them (as torch's SyncBatchNorm does), and gradients
    flow across processes. Otherwise (eval mode, one process) it is a plain BatchNorm.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._syncs():
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        group = self.process_group or dist.group.WORLD
        x = input.float()
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        sums = _SumOverProcesses.apply(torch.cat([x.sum(dims), count]), group)
        n = sums[-1].detach()
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {n}")
        mean = sums[:-1] / n
        centered = x - mean.view(shape)
        var = _SumOverProcesses.apply(centered.square().sum(dims), group) / n
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * (n / (n - 1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out.to(input.dtype)

    def _syncs(self) -> bool:
        """Whether this call normalises over several processes (training, batch statistics)."""
        if not self.training or not dist.is_available() or not dist.is_initialized():
            return False
        return dist.get_world_size(self.process_group or dist.group.WORLD) > 1


def _is_plain_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, (nn.SyncBatchNorm, CPUSyncBatchNorm)
    )


def _to_cpu_sync(bn: nn.modules.batchnorm._BatchNorm) -> CPUSyncBatchNorm:
    synced = CPUSyncBatchNorm(
        bn.num_features,
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
    )
    synced.load_state_dict(bn.state_dict())
    if bn.affine:
        synced.weight.requires_grad_(bn.weight.requires_grad)
        synced.bias.requires_grad_(bn.bias.requires_grad)
    return synced.train(bn.training)


def convert_batchnorm(module: nn.Module, *, device_type: str) -> nn.Module:
    """``module`` with every BatchNorm layer below it (itself included) normalising over all
    processes: ``torch.nn.SyncBatchNorm`` (its ``convert_sync_batchnorm``) when the model will
    run on an accelerator, :class:`CPUSyncBatchNorm` when ``device_type`` is "cpu". Parameters,
    buffers, ``requires_grad`` and train / eval mode are kept; call it before the model moves to
    its device. Returns the module (a new one when ``module`` itself is a BatchNorm)."""
    if device_type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if _is_plain_batchnorm(module):
        return _to_cpu_sync(module)
    for name, child in module.named_children():
        converted = convert_batchnorm(child, device_type=device_type)
        if converted is not child:
            setattr(module, name, converted)
    return module


def sync_light_head_batchnorm(model: nn.Module, *, device_type: str) -> int:
    """Make the BatchNorm layers of a :class:`VFMSegmentor`'s light head (``decode_head``) and of
    its backbone's trainable feature pyramid (Rein's CLIP ``fpn1`` .. ``fpn4``, where the original
    has SyncBatchNorm) normalise over all processes; other models are left as they are. Call it
    before DDP wraps the model. Returns the number of layers converted."""
    if not isinstance(model, VFMSegmentor):
        return 0
    owners = [(model, "decode_head")]
    owners += [(model.backbone, name) for name in getattr(model.backbone, "pyramid", ())]
    converted = 0
    for owner, name in owners:
        module = getattr(owner, name)
        converted += sum(_is_plain_batchnorm(m) for m in module.modules())
        setattr(owner, name, convert_batchnorm(module, device_type=device_type))
    return converted
