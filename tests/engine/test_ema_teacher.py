"""EMA teacher: maths, period, scope, no gradients / optimizer, eval-mode prediction, resume."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from clouds.config import get_cfg
from clouds.engine.ema_teacher import EMATeacher, TeacherStateError


class Student(nn.Module):
    """Frozen backbone, head with dropout, a trainable embedding outside the head."""

    teacher_prefixes = ("sem_seg_head.",)

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 4).requires_grad_(False)
        self.sem_seg_head = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
        self.void_embedding = nn.Parameter(torch.zeros(2))
        self.geometric_ensemble = None
        self.seen_ensembles: list[object] = []

    def forward(self, batched_inputs: list[dict]) -> dict | list[dict]:
        x = torch.stack([d["x"] for d in batched_inputs])
        scores = self.sem_seg_head(self.backbone(x)) + self.void_embedding
        if self.training:
            return {"loss": scores.square().mean()}
        self.seen_ensembles.append(self.geometric_ensemble)
        return [{"sem_seg": s} for s in scores]


def _set(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)


def test_from_config_reads_the_keys() -> None:
    cfg = get_cfg()
    teacher = EMATeacher.from_config(cfg)
    assert (teacher.alpha, teacher.period, teacher.scope) == (0.999, 100, "head")


def test_ema_update_matches_hand_computation() -> None:
    student = Student()
    _set(student.sem_seg_head, 1.0)
    teacher = EMATeacher(alpha=0.9, period=1)
    teacher.initialize(student)
    _set(student.sem_seg_head, 3.0)
    teacher.update(student)  # 0.9 * 1 + 0.1 * 3 = 1.2
    _set(student.sem_seg_head, -1.0)
    teacher.update(student)  # 0.9 * 1.2 + 0.1 * -1 = 0.98
    for name, tensor in teacher.teacher.items():
        torch.testing.assert_close(tensor, torch.full_like(tensor, 0.98), msg=name)
    assert teacher.num_updates == 2


def test_update_period_follows_global_step() -> None:
    student = Student()
    teacher = EMATeacher(alpha=0.5, period=3)
    module = SimpleNamespace(model=student)
    _set(student.sem_seg_head, 0.0)
    teacher.on_fit_start(SimpleNamespace(), module)  # teacher = 0
    expected = 0.0
    for step in range(8):
        _set(student.sem_seg_head, float(step))
        teacher.on_train_batch_start(SimpleNamespace(global_step=step), module, None, 0)
        if step % 3 == 0:
            expected = 0.5 * expected + 0.5 * step  # steps 0, 3, 6: 0, 1.5, 3.75
        # a second batch of the same optimizer step (gradient accumulation) changes nothing
        teacher.on_train_batch_start(SimpleNamespace(global_step=step), module, None, 1)
        value = teacher.teacher["sem_seg_head.0.weight"]
        torch.testing.assert_close(value, torch.full_like(value, expected))
    assert teacher.num_updates == 3 and expected == 3.75


def test_scopes_never_copy_the_frozen_backbone() -> None:
    student = Student()
    head = EMATeacher(scope="head")
    head.initialize(student)
    assert set(head.teacher) == {n for n, _ in student.named_parameters() if "sem_seg_head" in n}
    trainable = EMATeacher(scope="trainable")
    trainable.initialize(student)
    assert "void_embedding" in trainable.teacher
    assert not any(name.startswith("backbone") for name in trainable.teacher)


def test_head_scope_follows_the_models_teacher_prefixes() -> None:
    student = Student()
    both = EMATeacher(head_prefixes=("sem_seg_head.2.", "void_"))
    both.initialize(student)
    assert set(both.teacher) == {"sem_seg_head.2.weight", "sem_seg_head.2.bias", "void_embedding"}
    bare = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="teacher_prefixes"):
        EMATeacher(scope="head").initialize(bare)
    with pytest.raises(ValueError, match="no tensor named head"):
        EMATeacher(head_prefixes=("head.",)).initialize(student)


def test_teacher_gets_no_gradient_and_is_not_optimised() -> None:
    student = Student()
    teacher = EMATeacher(alpha=0.5, period=1, scope="trainable")
    teacher.initialize(student)
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.1)
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(t) for t in teacher.teacher.values()}
    before = {n: t.clone() for n, t in teacher.teacher.items()}
    batch = [{"x": torch.randn(3)} for _ in range(4)]
    prediction = teacher.predict(student, batch)
    student(batch)["loss"].backward()
    optimizer.step()
    assert all(not t.requires_grad and t.grad is None for t in teacher.teacher.values())
    assert all(p["sem_seg"].grad_fn is None for p in prediction)
    for name, tensor in teacher.teacher.items():  # the optimizer step did not touch it
        torch.testing.assert_close(tensor, before[name])


def test_predict_uses_teacher_weights_in_eval_mode_and_restores_student() -> None:
    student = Student().train()
    teacher = EMATeacher()
    teacher.initialize(student)
    reference = Student()
    reference.load_state_dict(student.state_dict())
    _set(student.sem_seg_head, 0.3)  # the student moves on, the teacher does not
    batch = [{"x": torch.randn(3)} for _ in range(2)]
    first = teacher.predict(student, batch)
    second = teacher.predict(student, batch)
    expected = reference.eval()(batch)
    for a, b, c in zip(first, second, expected):
        torch.testing.assert_close(a["sem_seg"], b["sem_seg"])  # no dropout
        torch.testing.assert_close(a["sem_seg"], c["sem_seg"])
    assert student.training and student.sem_seg_head[1].training
    assert (student.sem_seg_head[0].weight == 0.3).all()


def test_teacher_geometric_ensemble_is_set_only_during_prediction() -> None:
    student = Student()
    teacher = EMATeacher()
    teacher.initialize(student)
    marker = object()
    teacher.predict(student, [{"x": torch.randn(3)}], geometric_ensemble=marker)
    assert student.seen_ensembles == [marker] and student.geometric_ensemble is None


def test_state_round_trip_restores_teacher_on_fit_start() -> None:
    student = Student()
    teacher = EMATeacher(alpha=0.5, period=2)
    module = SimpleNamespace(model=student)
    teacher.on_fit_start(SimpleNamespace(), module)
    _set(student.sem_seg_head, 2.0)
    teacher.on_train_batch_start(SimpleNamespace(global_step=4), module, None, 0)
    state = teacher.state_dict()
    restored = EMATeacher(alpha=0.5, period=2)
    restored.load_state_dict(state)
    _set(student.sem_seg_head, 7.0)  # must not overwrite the restored teacher
    restored.on_fit_start(SimpleNamespace(), module)
    for name, tensor in teacher.teacher.items():
        torch.testing.assert_close(restored.teacher[name], tensor)
    assert (restored.num_updates, restored.last_update_step) == (1, 4)
    # resuming at the step already applied does not update twice
    restored.on_train_batch_start(SimpleNamespace(global_step=4), module, None, 0)
    assert restored.num_updates == 1


def test_mismatched_states_are_reported() -> None:
    student = Student()
    teacher = EMATeacher()
    teacher.initialize(student)
    state = teacher.state_dict()
    with pytest.raises(TeacherStateError, match="scope"):
        EMATeacher(scope="trainable").load_state_dict(state)
    state["teacher"]["sem_seg_head.0.weight"] = torch.zeros(5, 5)
    broken = EMATeacher()
    broken.load_state_dict(state)
    with pytest.raises(TeacherStateError, match="sem_seg_head.0.weight"):
        broken.on_fit_start(SimpleNamespace(), SimpleNamespace(model=student))


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="ALPHA_EMA"):
        EMATeacher(alpha=1.5)
    with pytest.raises(ValueError, match="ITERATION_UPDATE"):
        EMATeacher(period=0)
    with pytest.raises(ValueError, match="TEACHER_SCOPE"):
        EMATeacher(scope="all")


def _ddp_worker(rank: int, folder: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # the same student on both ranks
        student = Student()
        teacher = EMATeacher(alpha=0.5)
        teacher.initialize(student)
        teacher.update(student)  # synchronised students: passes
        if rank == 1:
            _set(student.sem_seg_head, 5.0)  # unsynchronised students must be caught
        try:
            teacher.update(student)
            message = "not caught"
        except RuntimeError as e:
            message = str(e)
        Path(folder, f"rank{rank}.txt").write_text(message)
    finally:
        dist.destroy_process_group()


def test_ranks_are_checked_to_hold_the_same_teacher(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.start_processes(_ddp_worker, args=(str(tmp_path),), nprocs=2, start_method="fork")
    for rank in (0, 1):
        assert "differ across DDP ranks" in (tmp_path / f"rank{rank}.txt").read_text()
