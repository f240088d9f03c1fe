import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clouds.modeling.criterion import SetCriterion, dice_loss, sigmoid_ce_loss
from clouds.modeling.matcher import HungarianMatcher
from tests.modeling.head_utils import tiny_head_cfg


def _criterion(
    num_points: int = 64, importance: float = 0.75, deep_supervision: bool = False
) -> SetCriterion:
    return SetCriterion(
        matcher=HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=16),
        weight_dict={"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0},
        eos_coef=0.1,
        num_points=num_points,
        oversample_ratio=3.0,
        importance_sample_ratio=importance,
        deep_supervision=deep_supervision,
    )


def _half_target(size: int = 8) -> dict[str, torch.Tensor]:
    mask = torch.zeros(1, size, size, dtype=torch.bool)
    mask[0, :, : size // 2] = True
    return {"labels": torch.tensor([1]), "masks": mask}


def test_dice_and_bce_on_hand_made_points():
    logits = torch.tensor([[30.0, 30.0, -30.0, -30.0], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    # Row 0 is perfect (0); row 1 has p = 0.5: dice 1 - (2 + 1) / (4 + 1), BCE log 2.
    assert dice_loss(logits, targets, 2).item() == pytest.approx(0.4 / 2, abs=1e-6)
    assert sigmoid_ce_loss(logits, targets, 2).item() == pytest.approx(math.log(2) / 2, abs=1e-6)


def test_perfect_prediction_has_near_zero_losses():
    target = {"labels": torch.tensor([1]), "masks": torch.zeros(1, 64, 64, dtype=torch.bool)}
    target["masks"][0, 16:48, 8:40] = True
    good = torch.where(target["masks"], 30.0, -30.0)[None].repeat(1, 2, 1, 1)
    good[0, 1] = -30.0
    logits = torch.tensor([[[-20.0, 20.0, -20.0], [-20.0, -20.0, 20.0]]])
    criterion = _criterion(num_points=2000, importance=0.0)
    losses = criterion({"pred_logits": logits, "pred_masks": good}, [target])
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice"}
    assert losses["loss_ce"] < 1e-6
    # Only points within half a pixel of the mask border read interpolated values.
    assert losses["loss_dice"] < 0.03
    wrong = good.clone()
    wrong[0, 0] = -wrong[0, 0]  # the complement of the target
    bad = criterion({"pred_logits": logits, "pred_masks": wrong}, [target])
    assert bad["loss_dice"] > 0.9 and bad["loss_mask"] > 10 * losses["loss_mask"]


def test_cross_entropy_weights_unmatched_queries_by_eos_coef():
    masks = torch.full((1, 2, 8, 8), -30.0)
    masks[0, 0, :, :4] = 30.0  # query 0 gets matched to the target (class 1)
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    losses = _criterion()({"pred_logits": logits, "pred_masks": masks}, [_half_target()])
    matched = -math.log(math.exp(0.0) / (math.exp(2.0) + 2.0))
    void = -math.log(math.exp(1.0) / (2.0 + math.exp(1.0)))
    expected = (1.0 * matched + 0.1 * void) / (1.0 + 0.1)
    assert losses["loss_ce"].item() == pytest.approx(expected, rel=1e-5)


def test_uninformative_masks_give_known_losses_normalised_by_mask_count():
    full = torch.ones(1, 8, 8, dtype=torch.bool)
    targets = [{"labels": torch.tensor([0]), "masks": full} for _ in range(2)]
    outputs = {"pred_logits": torch.zeros(2, 3, 3), "pred_masks": torch.zeros(2, 3, 8, 8)}
    losses = _criterion()(outputs, targets)
    # Logit 0 everywhere: BCE is log 2 at every point whatever the target; 2 masks / 2.
    assert losses["loss_mask"].item() == pytest.approx(math.log(2.0), rel=1e-5)
    assert losses["loss_ce"].item() == pytest.approx(math.log(3.0), rel=1e-5)


def test_no_targets_trains_everything_towards_void():
    logits = torch.randn(1, 3, 3, requires_grad=True)
    masks = torch.randn(1, 3, 8, 8, requires_grad=True)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8).bool()}
    losses = _criterion()({"pred_logits": logits, "pred_masks": masks}, [empty])
    assert losses["loss_mask"].item() == 0.0 and losses["loss_dice"].item() == 0.0
    expected = -logits.detach().log_softmax(-1)[..., -1].mean()
    assert losses["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-5)
    sum(losses.values()).backward()
    assert logits.grad[..., -1].lt(0).all()


def test_deep_supervision_keys_match_weight_dict_and_class_count_follows_logits():
    cfg = tiny_head_cfg()
    criterion = SetCriterion.from_config(cfg)
    num_aux = cfg.MODEL.MASK_FORMER.DEC_LAYERS - 1
    assert len(criterion.weight_dict) == 3 * (1 + num_aux)
    assert criterion.weight_dict["loss_ce_0"] == 2.0 and criterion.weight_dict["loss_dice_2"] == 5.0
    cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 0.5
    assert SetCriterion.from_config(cfg).weight_dict["loss_mask_1"] == 2.5
    for num_classes in (2, 5):  # open vocabulary: K comes from the logits

        def layer(k=num_classes):
            return {
                "pred_logits": torch.randn(2, 6, k + 1, requires_grad=True),
                "pred_masks": torch.randn(2, 6, 8, 8, requires_grad=True),
            }

        outputs = {**layer(), "aux_outputs": [layer() for _ in range(num_aux)]}
        targets = [
            {"labels": torch.tensor([0, 1]), "masks": torch.rand(2, 8, 8) > 0.5},
            {"labels": torch.tensor([1]), "masks": torch.rand(1, 8, 8) > 0.5},
        ]
        losses = criterion(outputs, targets)
        assert set(losses) == set(criterion.weight_dict)
        total = sum(criterion.weight_dict[k] * v for k, v in losses.items())
        assert torch.isfinite(total)
        total.backward()
        assert outputs["aux_outputs"][0]["pred_masks"].grad.abs().sum() > 0


def test_without_deep_supervision_aux_outputs_are_ignored():
    outputs = {"pred_logits": torch.randn(1, 2, 3), "pred_masks": torch.randn(1, 2, 8, 8)}
    outputs["aux_outputs"] = [dict(outputs)]
    losses = _criterion(deep_supervision=False)(outputs, [_half_target()])
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice"}


def test_mask_count_is_all_reduced_in_a_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        targets = [
            _half_target(),
            {"labels": torch.tensor([0, 1]), "masks": torch.ones(2, 8, 8).bool()},
        ]
        assert SetCriterion._num_masks(targets, torch.device("cpu")).item() == 3.0
        empty = [
            {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8).bool()}
        ]
        assert SetCriterion._num_masks(empty, torch.device("cpu")).item() == 1.0
    finally:
        dist.destroy_process_group()


# Two processes holding 1 and 3 target masks, all empty. Rank 0 predicts logit 0 everywhere: each
# mask's BCE is log 2 and its dice 1 - 1 / (N / 2 + 1) on N points, wherever they fall. Rank 1
# predicts -60 (even the zero padding around the border keeps it below -15): both losses ~0.
_RANK_MASKS = (1, 3)
_RANK_LOGIT = (0.0, -60.0)
_POINTS = 16


def _rank_losses(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        n = _RANK_MASKS[rank]
        target = {"labels": torch.zeros(n, dtype=torch.int64), "masks": torch.zeros(n, 8, 8).bool()}
        outputs = {
            "pred_logits": torch.zeros(1, 4, 3),
            "pred_masks": torch.full((1, 4, 8, 8), _RANK_LOGIT[rank]),
        }
        losses = _criterion(num_points=_POINTS)(outputs, [target])
        torch.save({k: v.detach() for k, v in losses.items()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_average_to_the_loss_of_the_pooled_batch(tmp_path):
    # DDP averages the ranks' gradients, so the mean of the ranks' losses must be the loss of the
    # pooled batch: each rank divides its masks' sum by the mean mask count over the ranks (2).
    mp.spawn(_rank_losses, args=(str(tmp_path / "pg"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    per_mask = {"loss_mask": (math.log(2.0), 0.0), "loss_dice": (1 - 1 / (_POINTS / 2 + 1), 0.0)}
    for key, (loss0, loss1) in per_mask.items():
        pooled = (_RANK_MASKS[0] * loss0 + _RANK_MASKS[1] * loss1) / sum(_RANK_MASKS)
        mean_of_ranks = (ranks[0][key] + ranks[1][key]).item() / 2
        assert mean_of_ranks == pytest.approx(pooled, abs=1e-5), key
        # rank 0 alone: its one mask over the mean count (1 + 3) / 2 = 2
        assert ranks[0][key].item() == pytest.approx(loss0 / 2, abs=1e-5), key
