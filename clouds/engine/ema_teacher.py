"""EMA teacher of joint training, as a Lightning callback.

The teacher is an exponential moving average of the student's head (``scope="head"``, the
original: every parameter and buffer under the name prefixes the segmentor declares as its
``teacher_prefixes``, e.g. ``sem_seg_head.`` for CLOUDS) or of every trainable tensor
(``scope="trainable"``). It is stored as detached tensors keyed by the student's own names, and it
predicts by running the student with those tensors swapped in (``torch.func.functional_call``),
so it shares the frozen CLIP backbone with the student instead of copying it. The teacher is
never a parameter of the LightningModule: no optimizer sees it, no gradient reaches it, and the
model checkpoint does not hold it; Lightning saves it with the callback state
(:meth:`EMATeacher.state_dict`) and restores it on resume.

Schedule (the original CLOUDS): the teacher starts as a copy of the student when training starts,
then before every optimizer step ``s`` with ``s % period == 0`` it becomes
``alpha * teacher + (1 - alpha) * student``. Every DDP rank applies the same update to the same
synchronised student weights; :meth:`EMATeacher.update` checks that the ranks agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torch.func import functional_call

from clouds.config import CfgNode
from clouds.utils import comm

__all__ = ["TEACHER_SCOPES", "EMATeacher", "TeacherStateError"]

TEACHER_SCOPES = ("head", "trainable")


class TeacherStateError(RuntimeError):
    """A saved teacher that does not fit the student (names or shapes differ)."""


class EMATeacher(Callback):
    """Exponential-moving-average teacher of the student segmentation model."""

    def __init__(
        self,
        *,
        alpha: float = 0.999,
        period: int = 100,
        scope: str = "head",
        head_prefixes: tuple[str, ...] | None = None,
        model_attribute: str = "model",
    ) -> None:
        """
        Args:
            alpha: EMA decay (weight of the old teacher).
            period: optimizer steps between updates.
            scope: "head" (tensors under ``head_prefixes``) or "trainable" (every parameter with
                ``requires_grad``).
            head_prefixes: name prefixes of the head inside the segmentation model; None: the
                model's ``teacher_prefixes`` attribute.
            model_attribute: attribute of the LightningModule holding the segmentation model.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"MODEL.CLOUDS.SAM.ALPHA_EMA must be in [0, 1], got {alpha}")
        if period < 1:
            raise ValueError(f"MODEL.CLOUDS.ITERATION_UPDATE must be >= 1, got {period}")
        if scope not in TEACHER_SCOPES:
            raise ValueError(
                f"MODEL.CLOUDS.TEACHER_SCOPE must be one of {TEACHER_SCOPES}, got {scope!r}"
            )
        self.alpha = alpha
        self.period = period
        self.scope = scope
        self.head_prefixes = head_prefixes
        self.model_attribute = model_attribute
        self.teacher: dict[str, torch.Tensor] | None = None
        self.num_updates = 0
        self.last_update_step = -1
        self._pending_state: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, cfg: CfgNode) -> EMATeacher:
        return cls(
            alpha=cfg.MODEL.CLOUDS.SAM.ALPHA_EMA,
            period=cfg.MODEL.CLOUDS.ITERATION_UPDATE,
            scope=cfg.MODEL.CLOUDS.TEACHER_SCOPE,
        )

    # ------------------------------------------------------------------ teacher maths
    def student_tensors(self, student: nn.Module) -> dict[str, torch.Tensor]:
        """The student's tensors the teacher mirrors, by name."""
        if self.scope == "head":
            prefixes = self.head_prefixes or getattr(student, "teacher_prefixes", None)
            if not prefixes:
                raise ValueError(
                    f"MODEL.CLOUDS.TEACHER_SCOPE 'head': {type(student).__name__} declares no "
                    "`teacher_prefixes` (the name prefixes of its head); use TEACHER_SCOPE "
                    "'trainable'"
                )
            named = {**dict(student.named_parameters()), **dict(student.named_buffers())}
            selected = {n: t for n, t in named.items() if n.startswith(tuple(prefixes))}
            if not selected:
                raise ValueError(
                    f"MODEL.CLOUDS.TEACHER_SCOPE 'head': the model has no tensor named "
                    f"{' or '.join(p + '*' for p in prefixes)}"
                )
        else:
            selected = {n: p for n, p in student.named_parameters() if p.requires_grad}
            if not selected:
                raise ValueError("MODEL.CLOUDS.TEACHER_SCOPE 'trainable': nothing is trainable")
        return selected

    @torch.no_grad()
    def initialize(self, student: nn.Module) -> None:
        """Make the teacher an exact copy of the student's mirrored tensors."""
        self.teacher = {n: t.detach().clone() for n, t in self.student_tensors(student).items()}
        for tensor in self.teacher.values():
            tensor.requires_grad_(False)
        self.num_updates = 0
        self.last_update_step = -1

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """teacher <- alpha * teacher + (1 - alpha) * student (non-float buffers are copied)."""
        teacher = self._require_teacher()
        for name, source in self.student_tensors(student).items():
            target = teacher[name]
            if target.is_floating_point():
                target.mul_(self.alpha).add_(source.detach().to(target.dtype), alpha=1 - self.alpha)
            else:
                target.copy_(source)
        self.num_updates += 1
        self._check_ranks_agree()

    def _require_teacher(self) -> dict[str, torch.Tensor]:
        if self.teacher is None:
            raise RuntimeError("The EMA teacher is not initialised yet (training has not started)")
        return self.teacher

    def _check_ranks_agree(self) -> None:
        """Raise when DDP ranks hold different teachers (they must: same synchronised student)."""
        if comm.get_world_size() == 1:
            return
        teacher = self._require_teacher()
        checksum = torch.stack(
            [t.detach().double().sum() for t in teacher.values() if t.is_floating_point()]
        ).sum()
        low, high = checksum.clone().reshape(1), checksum.clone().reshape(1)
        comm.all_reduce(low, op="min")
        comm.all_reduce(high, op="max")
        if not torch.equal(low, high):
            raise RuntimeError(
                f"EMA teachers differ across DDP ranks (checksums {low.item()} .. {high.item()}): "
                "the student weights are not synchronised"
            )

    @contextlib.contextmanager
    def _eval_mode(self, student: nn.Module) -> Iterator[None]:
        modes = {module: module.training for module in student.modules()}
        student.eval()
        try:
            yield
        finally:
            for module, training in modes.items():
                module.training = training

    @torch.no_grad()
    def predict(
        self,
        student: nn.Module,
        batched_inputs: list[dict[str, Any]],
        *,
        geometric_ensemble: Any | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Run the student in eval mode with the teacher's tensors swapped in.

        Args:
            student: the segmentation model (not its DDP wrapper).
            batched_inputs: model inputs (see ``clouds.modeling``), "image" (3, H, W) uint8.
            geometric_ensemble: what the model's ``geometric_ensemble`` attribute holds during
                this prediction (a ``clouds.modeling.geometric_ensemble.GeometricEnsemble``,
                or None for the decoder's class probabilities alone).

        Returns:
            The model's eval outputs: one {"sem_seg": (K, height, width) class scores} per input.
        """
        teacher = self._require_teacher()
        with self._eval_mode(student), _ensemble(student, geometric_ensemble):
            return functional_call(student, teacher, (batched_inputs,), strict=False)

    # ------------------------------------------------------------------ Lightning hooks
    def student_of(self, pl_module: LightningModule) -> nn.Module:
        """The segmentation model inside ``pl_module``."""
        student = getattr(pl_module, self.model_attribute, None)
        if not isinstance(student, nn.Module):
            raise AttributeError(
                f"EMATeacher expects the LightningModule to hold the segmentation model as "
                f".{self.model_attribute}"
            )
        return student

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._materialise(self.student_of(pl_module))

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        student = self.student_of(pl_module)
        self._materialise(student)
        step = trainer.global_step
        if step % self.period == 0 and step != self.last_update_step:
            self.update(student)
            self.last_update_step = step

    def _materialise(self, student: nn.Module) -> None:
        """Create the teacher from a restored state if one is pending, else from the student."""
        if self._pending_state is not None:
            self._load_teacher(student, self._pending_state)
            self._pending_state = None
        elif self.teacher is None:
            self.initialize(student)

    def _load_teacher(self, student: nn.Module, state: dict[str, Any]) -> None:
        expected = self.student_tensors(student)
        saved = state["teacher"]
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        wrong_shape = [
            f"{n}: saved {tuple(saved[n].shape)} vs model {tuple(expected[n].shape)}"
            for n in expected
            if n in saved and saved[n].shape != expected[n].shape
        ]
        if missing or unexpected or wrong_shape:
            raise TeacherStateError(
                "The saved EMA teacher does not fit the model: "
                f"missing {missing[:10]}, unexpected {unexpected[:10]}, shapes {wrong_shape[:10]}"
            )
        self.teacher = {
            n: saved[n].detach().to(device=t.device, dtype=t.dtype).clone()
            for n, t in expected.items()
        }
        self.num_updates = int(state["num_updates"])
        self.last_update_step = int(state["last_update_step"])

    def state_dict(self) -> dict[str, Any]:
        if self._pending_state is not None:
            return dict(self._pending_state)
        if self.teacher is None:
            return {}
        return {
            "teacher": {n: t.detach().cpu() for n, t in self.teacher.items()},
            "num_updates": self.num_updates,
            "last_update_step": self.last_update_step,
            "scope": self.scope,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if state_dict.get("scope") != self.scope:
            raise TeacherStateError(
                f"The checkpoint's EMA teacher has scope {state_dict.get('scope')!r} but "
                f"MODEL.CLOUDS.TEACHER_SCOPE is {self.scope!r}"
            )
        self._pending_state = dict(state_dict)


@contextlib.contextmanager
def _ensemble(student: nn.Module, ensemble: Any | None) -> Iterator[None]:
    """Temporarily set ``student.geometric_ensemble`` to ``ensemble`` (when the model has one)."""
    if not hasattr(student, "geometric_ensemble"):
        if ensemble is not None:
            raise AttributeError(
                "MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_EMA needs a model with a "
                "`geometric_ensemble` attribute (the CLOUDS meta-architecture)"
            )
        yield
        return
    previous = student.geometric_ensemble
    student.geometric_ensemble = ensemble
    try:
        yield
    finally:
        student.geometric_ensemble = previous
