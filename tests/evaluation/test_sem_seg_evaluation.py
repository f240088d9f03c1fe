"""SemSegEvaluator against a hand-computed confusion matrix and the original's evaluator, files
it writes, DDP reduction.

Fixture ``fixtures/clouds_recipe/original_evaluator.json`` (made outside this project by
/work/scratch/clouds-recipe/gen_eval_fixture.py): three 12x16 label maps (seed 0) holding
classes 0-9 and ignored pixels, predictions that also hold classes 10-12 (never in the labels)
and the results of the original CLOUDS's ``ClassicalSemSegEvaluator``
(clouds/evaluation/semantic_evaluation.py at bac4305: detectron2's SemSegEvaluator rule) on them.

Fixture ``fixtures/clouds_recipe/cityscapes_scripts_evaluator.json`` (made outside this project by
/work/scratch/clouds-data/gen_cityscapes_scripts_fixture.py with cityscapesscripts 2.3.0): three
12x16 Cityscapes label-ID maps (seed 0: train classes 0-9 and six ignored label IDs),
train-ID predictions that also hold classes 10-12 (never in the labels), and the class IoUs and
their average that cityscapesScripts' ``evaluateImgLists`` gives once the predictions are written
as label IDs (as the original's CityscapesSemSegEvaluator writes them).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clouds.data.catalog import MetadataCatalog
from clouds.data.datasets.cityscapes_meta import label_id_to_train_id_lut
from clouds.evaluation import SemSegEvaluator, confusion_matrix
from clouds.evaluation.metrics import mean_over_rule
from clouds.utils.io import write_png_atomic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/clouds_recipe"
FIXTURE = FIXTURES / "original_evaluator.json"
CITYSCAPES_SCRIPTS_FIXTURE = FIXTURES / "cityscapes_scripts_evaluator.json"
DATASET = "_test_eval_toy5"
CLASSES = ["road", "car", "sky", "tree", "person"]
X = 255  # ignore label

# Image 1: ignore pixels are predicted as road and as tree; tree is nowhere else.
GT1 = np.array([[0, 0, 1, X], [0, 2, 2, X]], dtype=np.uint8)
PRED1 = np.array([[0, 1, 1, 0], [0, 2, 0, 3]])
# Image 2: person is predicted once but never in the ground truth.
GT2 = np.array([[1, 1, 2, 2], [1, 1, X, 2]], dtype=np.uint8)
PRED2 = np.array([[1, 4, 2, 2], [1, 1, 3, 0]])

# Counted by hand from the arrays above, rows = ground truth, columns = prediction.
HAND_CONF = [
    [2, 1, 0, 0, 0],  # road: 2 right, 1 as car
    [0, 4, 0, 0, 1],  # car: 4 right, 1 as person
    [2, 0, 3, 0, 0],  # sky: 3 right, 2 as road
    [0, 0, 0, 0, 0],  # tree: only predicted on ignore pixels -> absent from both
    [0, 0, 0, 0, 0],  # person: never in the ground truth
]
# IoU = tp / (gt + pred - tp): road 2/(3+4-2), car 4/(5+5-4), sky 3/(5+3-3), person 0/(0+1-0)
HAND_IOU = {"road": 2 / 5, "car": 4 / 6, "sky": 3 / 5, "tree": math.nan, "person": 0.0}
HAND_ACC = {"road": 2 / 3, "car": 4 / 5, "sky": 3 / 5, "tree": math.nan, "person": math.nan}
HAND_MIOU = (2 / 5 + 4 / 6 + 3 / 5 + 0.0) / 4
HAND_MACC = (2 / 3 + 4 / 5 + 3 / 5) / 3
HAND_PACC = 9 / 13
HAND_FWIOU = 3 / 13 * 2 / 5 + 5 / 13 * 4 / 6 + 5 / 13 * 3 / 5
# detectron2's rule (TEST.MEAN_OVER_CLASSES "gt"): person, absent from the labels, is not scored.
HAND_MIOU_GT = (2 / 5 + 4 / 6 + 3 / 5) / 3


def _register() -> None:
    MetadataCatalog.get(DATASET).set(stuff_classes=CLASSES, ignore_label=X)


@pytest.fixture
def toy_metadata() -> Iterator[str]:
    _register()
    yield DATASET
    MetadataCatalog.remove(DATASET)


def _scores(pred: np.ndarray, num_classes: int = len(CLASSES)) -> torch.Tensor:
    """(K, H, W) scores whose argmax is ``pred``."""
    onehot = torch.nn.functional.one_hot(torch.from_numpy(pred).long(), num_classes)
    return onehot.permute(2, 0, 1).float() + 0.01 * torch.rand(num_classes, *pred.shape)


def _write_pair(root: Path, stem: str, gt: np.ndarray) -> dict:
    label = root / f"{stem}_label.png"
    write_png_atomic(gt, label)
    return {"file_name": str(root / f"{stem}.jpg"), "sem_seg_file_name": str(label)}


def _assert_close(actual: float, expected: float) -> None:
    if math.isnan(expected):
        assert math.isnan(actual)
    else:
        assert actual == pytest.approx(expected, abs=1e-9)


def test_confusion_matrix_by_hand() -> None:
    conf = confusion_matrix(torch.from_numpy(PRED1), torch.from_numpy(GT1).long(), 5, X)
    conf += confusion_matrix(torch.from_numpy(PRED2), torch.from_numpy(GT2).long(), 5, X)
    assert conf.tolist() == HAND_CONF


def test_metrics_match_hand_computation(toy_metadata: str, tmp_path: Path) -> None:
    inputs = [_write_pair(tmp_path, "a", GT1), _write_pair(tmp_path, "b", GT2)]
    evaluator = SemSegEvaluator(toy_metadata, distributed=False)
    evaluator.reset()
    evaluator.process(inputs[:1], [{"sem_seg": _scores(PRED1)}])
    evaluator.process(inputs[1:], [{"sem_seg": _scores(PRED2)}])
    assert evaluator.confusion_matrix().tolist() == HAND_CONF
    metrics = evaluator.evaluate()["sem_seg"]
    _assert_close(metrics["mIoU"], 100 * HAND_MIOU)
    _assert_close(metrics["mACC"], 100 * HAND_MACC)
    _assert_close(metrics["pACC"], 100 * HAND_PACC)
    _assert_close(metrics["fwIoU"], 100 * HAND_FWIOU)
    for name in CLASSES:
        _assert_close(metrics[f"IoU-{name}"], 100 * HAND_IOU[name])
        _assert_close(metrics[f"ACC-{name}"], 100 * HAND_ACC[name])
    evaluator.reset()
    assert evaluator.confusion_matrix().sum() == 0


def test_results_json_and_table(toy_metadata: str, tmp_path: Path, caplog) -> None:
    inputs = [_write_pair(tmp_path, "a", GT1), _write_pair(tmp_path, "b", GT2)]
    evaluator = SemSegEvaluator(toy_metadata, output_dir=tmp_path / "out", distributed=False)
    evaluator.process(inputs, [{"sem_seg": _scores(PRED1)}, {"sem_seg": _scores(PRED2)}])
    # The engine's logger setup stops propagation at "clouds": listen on the module logger itself.
    module_logger = logging.getLogger("clouds.evaluation.sem_seg_evaluation")
    module_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=module_logger.name):
            results = evaluator.evaluate()
    finally:
        module_logger.removeHandler(caplog.handler)
    path = tmp_path / "out" / "inference" / toy_metadata / "sem_seg_results.json"
    saved = json.loads(path.read_text())  # strict JSON: NaN is stored as null
    assert saved["sem_seg"]["IoU-tree"] is None
    assert saved["sem_seg"]["ACC-person"] is None
    assert saved["sem_seg"]["mIoU"] == pytest.approx(results["sem_seg"]["mIoU"])
    assert saved["sem_seg"]["IoU-person"] == 0.0
    assert "| person" in caplog.text and f"{100 * HAND_MIOU:.2f}" in caplog.text


def test_size_mismatch_names_the_file(toy_metadata: str, tmp_path: Path) -> None:
    inputs = [_write_pair(tmp_path, "a", GT1)]
    evaluator = SemSegEvaluator(toy_metadata, distributed=False)
    with pytest.raises(ValueError, match="a_label.png.*2x4.*a.jpg is 2x3"):
        evaluator.process(inputs, [{"sem_seg": _scores(PRED1[:, :3])}])


def test_bad_inputs_are_clear_errors(toy_metadata: str, tmp_path: Path) -> None:
    evaluator = SemSegEvaluator(toy_metadata, distributed=False)
    bad_gt = GT1.copy()
    bad_gt[0, 0] = 7
    inputs = [_write_pair(tmp_path, "bad", bad_gt)]
    with pytest.raises(ValueError, match=r"bad_label.png.*\[7\]"):
        evaluator.process(inputs, [{"sem_seg": _scores(PRED1)}])
    with pytest.raises(ValueError, match="expected \\(5, H, W\\)"):
        evaluator.process(inputs, [{"sem_seg": torch.zeros(3, 2, 4)}])
    unlabelled = [{"file_name": "x/img.png", "sem_seg_file_name": None}]
    with pytest.raises(ValueError, match="img.png has no sem_seg_file_name"):
        evaluator.process(unlabelled, [{"sem_seg": _scores(PRED1)}])
    with pytest.raises(ValueError, match="needs the 19 Cityscapes train classes.*has 5"):
        SemSegEvaluator(toy_metadata, output_dir=tmp_path, save_predictions=True)
    with pytest.raises(ValueError, match="no stuff_classes"):
        SemSegEvaluator("_test_eval_unregistered", distributed=False)


def test_save_predictions_writes_cityscapes_label_ids(tmp_path: Path) -> None:
    from clouds.data.datasets.cityscapes_meta import CITYSCAPES_CLASSES

    name = "_test_eval_cityscapes19"
    MetadataCatalog.get(name).set(stuff_classes=list(CITYSCAPES_CLASSES), ignore_label=X)
    try:
        # train IDs: 0 road, 1 sidewalk, 10 sky, 13 car, 18 bicycle
        pred = np.array([[0, 1, 10], [13, 18, 0]])
        gt = np.array([[0, 1, 10], [13, 18, X]], dtype=np.uint8)
        inputs = [_write_pair(tmp_path, "aachen_000000_000019_leftImg8bit", gt)]
        evaluator = SemSegEvaluator(
            name, output_dir=tmp_path / "out", distributed=False, save_predictions=True
        )
        evaluator.process(inputs, [{"sem_seg": _scores(pred, num_classes=19)}])
        assert evaluator.evaluate()["sem_seg"]["pACC"] == pytest.approx(100.0)
        png = (
            tmp_path
            / "out"
            / "inference"
            / name
            / "predictions"
            / "aachen_000000_000019_leftImg8bit.png"
        )
        from PIL import Image

        with Image.open(png) as img:
            assert img.mode == "L"
            saved = np.asarray(img)
        # Cityscapes label IDs: road 7, sidewalk 8, sky 23, car 26, bicycle 33
        assert saved.tolist() == [[7, 8, 23], [26, 33, 7]]
    finally:
        MetadataCatalog.remove(name)


def _ddp_worker(rank: int, world_size: int, init_file: str, root: str, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        _register()
        evaluator = SemSegEvaluator(DATASET, output_dir=root, distributed=True)
        gt, pred = (GT1, PRED1) if rank == 0 else (GT2, PRED2)
        evaluator.process([_write_pair(Path(root), f"r{rank}", gt)], [{"sem_seg": _scores(pred)}])
        results = evaluator.evaluate()
        queue.put((rank, evaluator.confusion_matrix().tolist(), results["sem_seg"]["mIoU"]))
    finally:
        dist.destroy_process_group()


def test_ddp_sums_confusion_matrices(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path), queue),
        nprocs=2,
        join=True,
    )
    got = sorted(queue.get() for _ in range(2))
    for _rank, conf, miou in got:
        assert conf == HAND_CONF
        assert miou == pytest.approx(100 * HAND_MIOU)
    assert (tmp_path / "inference" / DATASET / "sem_seg_results.json").is_file()


def test_from_config(toy_metadata: str, tmp_path: Path) -> None:
    from clouds.config import load_config

    cfg = load_config(None, ["OUTPUT_DIR", str(tmp_path)])
    evaluator = SemSegEvaluator.from_config(cfg, toy_metadata)
    assert evaluator.output_dir == tmp_path / "inference" / toy_metadata
    assert not evaluator.save_predictions and evaluator.ignore_label == X


def test_mean_over_classes_with_ground_truth(toy_metadata: str, tmp_path: Path) -> None:
    inputs = [_write_pair(tmp_path, "a", GT1), _write_pair(tmp_path, "b", GT2)]
    evaluator = SemSegEvaluator(toy_metadata, distributed=False, mean_over="gt")
    evaluator.reset()
    evaluator.process(inputs, [{"sem_seg": _scores(PRED1)}, {"sem_seg": _scores(PRED2)}])
    metrics = evaluator.evaluate()["sem_seg"]
    _assert_close(metrics["mIoU"], 100 * HAND_MIOU_GT)
    assert math.isnan(metrics["IoU-person"]) and math.isnan(metrics["IoU-tree"])
    _assert_close(metrics["fwIoU"], 100 * HAND_FWIOU)
    _assert_close(metrics["mACC"], 100 * HAND_MACC)
    with pytest.raises(ValueError, match="MEAN_OVER_CLASSES"):
        SemSegEvaluator(toy_metadata, mean_over="union")


def test_equals_the_original_evaluator_with_absent_classes() -> None:
    """Labels handed over in "sem_seg" (as the test mapper resizes them), no label files."""
    fixture = json.loads(FIXTURE.read_text())
    name = "_test_eval_original"
    MetadataCatalog.get(name).set(stuff_classes=fixture["classes"], ignore_label=X)
    try:
        evaluator = SemSegEvaluator(name, distributed=False, mean_over="gt")
        evaluator.reset()
        for i, (gt, pred) in enumerate(zip(fixture["ground_truth"], fixture["prediction"])):
            item = {"file_name": f"img{i}.png", "sem_seg": torch.tensor(gt)}
            scores = _scores(np.array(pred), len(fixture["classes"]))
            evaluator.process([item], [{"sem_seg": scores}])
        ours = evaluator.evaluate()["sem_seg"]
    finally:
        MetadataCatalog.remove(name)
    expected = fixture["original_results"]
    assert any(v is None for k, v in expected.items() if k.startswith("IoU-"))
    for key, value in expected.items():
        _assert_close(ours[key], math.nan if value is None else value)
    assert set(ours) == set(expected)


def test_from_config_mean_over(toy_metadata: str) -> None:
    from clouds.config import load_config

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(str(repo / "configs/warmup/gta/train_gta.yaml"))
    assert cfg.TEST.MEAN_OVER_CLASSES == "clouds_original"
    assert SemSegEvaluator.from_config(cfg, toy_metadata).mean_over == "gt"
    cfg = load_config(None, ["TEST.MEAN_OVER_CLASSES", "gt_or_pred"])
    assert SemSegEvaluator.from_config(cfg, toy_metadata).mean_over == "gt_or_pred"


def test_clouds_original_rule_per_dataset() -> None:
    """cityscapesScripts' rule for the Cityscapes sets, detectron2's for the others."""
    for name in ("cityscapes_val", "cityscapes_train"):
        assert mean_over_rule("clouds_original", name) == "gt_or_pred"
    for name in ("bdd_val", "mapillary_val", "acdc_fog_val", "gta5"):
        assert mean_over_rule("clouds_original", name) == "gt"
    assert mean_over_rule("gt", "cityscapes_val") == "gt"
    assert mean_over_rule("gt_or_pred", "bdd_val") == "gt_or_pred"
    with pytest.raises(ValueError, match="TEST.MEAN_OVER_CLASSES.*'union'"):
        mean_over_rule("union", "bdd_val")


def _score_cityscapes_scripts_fixture(dataset_name: str, mean_over: str) -> dict[str, float]:
    fixture = json.loads(CITYSCAPES_SCRIPTS_FIXTURE.read_text())
    metadata = MetadataCatalog.get(dataset_name)
    registered_here = not metadata.get("stuff_classes")
    if registered_here:
        metadata.set(stuff_classes=fixture["classes"], ignore_label=X)
    assert metadata.get("stuff_classes") == fixture["classes"]
    lut = label_id_to_train_id_lut()
    try:
        evaluator = SemSegEvaluator(dataset_name, distributed=False, mean_over=mean_over)
        for i, (gt, pred) in enumerate(
            zip(fixture["ground_truth_label_ids"], fixture["prediction_train_ids"])
        ):
            item = {"file_name": f"img{i}.png", "sem_seg": lut[np.array(gt, dtype=np.uint8)]}
            scores = _scores(np.array(pred), len(fixture["classes"]))
            evaluator.process([item], [{"sem_seg": scores}])
        return evaluator.evaluate()["sem_seg"]
    finally:
        if registered_here:
            MetadataCatalog.remove(dataset_name)


def test_cityscapes_val_equals_cityscapes_scripts() -> None:
    """The reproduction configs' rule scores cityscapes_val as cityscapesScripts does: classes
    10-12, predicted but absent from the labels, count with IoU 0 in the mean."""
    expected = json.loads(CITYSCAPES_SCRIPTS_FIXTURE.read_text())["cityscapes_scripts_results"]
    ours = _score_cityscapes_scripts_fixture("cityscapes_val", "clouds_original")
    assert [k for k, v in expected.items() if v == 0.0] == ["IoU-sky", "IoU-person", "IoU-rider"]
    for key, value in expected.items():
        _assert_close(ours[key], math.nan if value is None else value)
    # detectron2's rule leaves classes 10-12 out of the mean: the fixture tells the rules apart
    detectron2 = _score_cityscapes_scripts_fixture("cityscapes_val", "gt")
    assert detectron2["mIoU"] > expected["mIoU"] + 10.0
    assert math.isnan(detectron2["IoU-sky"])


def test_other_datasets_keep_detectron2_rule_under_clouds_original() -> None:
    ours = _score_cityscapes_scripts_fixture("_test_eval_bdd_like", "clouds_original")
    assert math.isnan(ours["IoU-sky"]) and math.isnan(ours["IoU-rider"])
    assert ours["mIoU"] == pytest.approx(
        _score_cityscapes_scripts_fixture("_test_eval_bdd_like", "gt")["mIoU"], abs=1e-12
    )
