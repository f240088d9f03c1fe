"""Joint training: the component (keys, datasets' metadata, any segmentor) and, through the
engine, tiny CLOUDS on toy GTA5 + sd_toy with the tiny SAM.

One run of 2 iterations, then a resume to 3 (teacher with the geometric ensemble): checks
pseudo-labels, checkpoints holding the EMA teacher (and no SAM, no CLIP), the teacher restored on
resume (not re-copied from the student) and the evaluation results.
"""

from pathlib import Path

import pytest
import torch

from clouds.config import ConfigError, get_cfg, load_config
from clouds.data.catalog import DatasetCatalog, MetadataCatalog
from clouds.data.datasets import register_all_datasets
from clouds.data.toy import make_converted_toy_datasets
from clouds.engine.joint_training import JointTraining, build_joint_training, unlabelled_datasets
from clouds.engine.launch import run
from clouds.modeling import build_model
from clouds.modeling.meta_arch.clouds import CLOUDS
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from clouds.sam import SamRefiner, build_tiny_sam
from clouds.sam.build import SamCheckpointError
from tests.engine._predictions import RecordedPredictions, assert_results_match

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toy" / "joint_gta.yaml"


@pytest.fixture(scope="module")
def joint_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict, tuple[dict, RecordedPredictions]]:
    tmp = tmp_path_factory.mktemp("joint")
    make_converted_toy_datasets(tmp / "data", seed=0, num_images=2, size=(64, 128))
    register_all_datasets(tmp / "data")
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), tmp / "sam.pth")
    overrides = [
        "MODEL.WEIGHTS", "",
        "DATASETS.TEST", "('cityscapes_val',)",
        "MODEL.CLOUDS.SAM.CHECKPOINT", str(tmp / "sam.pth"),
        "MODEL.CLOUDS.SAM.ALPHA_EMA", "0.5",
        "MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_EMA", "True",
        "MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD", "1",
        "SOLVER.CHECKPOINT_PERIOD", "2",
        "OUTPUT_DIR", str(tmp / "out"),
    ]  # fmt: skip
    first = load_config(str(CONFIG), [*overrides, "SOLVER.MAX_ITER", "2"])
    second = load_config(str(CONFIG), [*overrides, "SOLVER.MAX_ITER", "3"])
    first.freeze()
    second.freeze()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads only add synchronisation
    try:
        run(first)
        saved = torch.load(tmp / "out" / "last.ckpt", map_location="cpu", weights_only=False)
        with RecordedPredictions(CLOUDS) as recorded:
            results = run(second, resume=True)
    finally:
        torch.set_num_threads(threads)
    return tmp / "out", saved, (results, recorded)


def test_pseudo_labels_are_dumped_before_and_after_refinement(joint_run) -> None:
    out, _, _ = joint_run
    names = {p.name for p in (out / "pseudo_labels").iterdir()}
    assert {"0000000_0_before.png", "0000000_0_after.png", "0000000_0_image.png"} <= names
    assert not [n for n in names if n.endswith(".tmp.png")]


def test_checkpoint_holds_teacher_but_no_frozen_models(joint_run) -> None:
    _, saved, _ = joint_run
    state = saved["callbacks"]["JointTraining"]
    assert (state["num_updates"], state["last_update_step"]) == (1, 0)  # ITERATION_UPDATE 2
    assert state["teacher"] and all(n.startswith("sem_seg_head.") for n in state["teacher"])
    for name in saved["state_dict"]:
        assert "backbone" not in name and "mask_decoder" not in name  # no CLIP, no SAM


def test_resume_continues_the_saved_teacher(joint_run) -> None:
    out, saved, _ = joint_run
    final = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    state = final["callbacks"]["JointTraining"]
    assert (state["num_updates"], state["last_update_step"]) == (2, 2)
    # the update at step 2 mixed the SAVED teacher with the student of step 2 (alpha 0.5)
    teacher, student = saved["callbacks"]["JointTraining"]["teacher"], saved["state_dict"]
    shared = set(teacher) & set(student)
    assert shared == set(teacher)
    for name in shared:
        expected = 0.5 * teacher[name] + 0.5 * student[name]
        torch.testing.assert_close(state["teacher"][name], expected, msg=name)


def test_joint_training_evaluates(joint_run) -> None:
    _, _, (results, recorded) = joint_run
    # the reported metrics are those of the model's predictions of both val images, by hand
    assert_results_match(results["cityscapes_val"]["sem_seg"], recorded, 2, 19)


# ---------------------------------------------------------------- the component, unit level
@pytest.fixture
def three_datasets():
    """A labelled source, an unlabelled set without the sd_ prefix, a labelled sd_ set."""
    names = {"jt_source": "labels", "jt_unlabelled": None, "sd_labelled": "labels"}
    for name, labels in names.items():
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, list)
        MetadataCatalog.get(name).set(sem_seg_root=labels)
    yield
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_switched_on_by_the_keys_and_the_datasets_metadata_not_their_names(
    three_datasets,
) -> None:
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("jt_source", "sd_labelled")
    assert build_joint_training(cfg) == []
    cfg.DATASETS.TRAIN = ("jt_source", "jt_unlabelled")
    assert unlabelled_datasets(cfg) == ["jt_unlabelled"]
    with pytest.raises(ConfigError, match="SAM.MINIBATCH"):
        build_joint_training(cfg)  # unlabelled images but no pseudo-labels asked for
    cfg.MODEL.CLOUDS.SAM.MINIBATCH = True
    (component,) = build_joint_training(cfg)
    assert isinstance(component, JointTraining) and component.labeler.refiner is None
    cfg.MODEL.CLOUDS.SAM.ENABLED = True
    cfg.MODEL.CLOUDS.SAM.MODEL_TYPE = "tiny"
    with pytest.raises(SamCheckpointError, match="SAM.CHECKPOINT is empty.*RANDOM_INIT"):
        build_joint_training(cfg)  # no SAM weights and no explicit request for a random SAM
    cfg.MODEL.CLOUDS.SAM.RANDOM_INIT = True
    (component,) = build_joint_training(cfg)
    assert isinstance(component.labeler.refiner, SamRefiner)
    assert component.labeler.teacher is component.teacher
    cfg.DATASETS.TRAIN = ("jt_source", "sd_labelled")
    with pytest.raises(ConfigError, match="no dataset"):
        build_joint_training(cfg)


def test_a_vfm_segmentor_is_self_trained_by_the_same_component() -> None:
    cfg = load_config(str(CONFIG.parent / "dg_dinov2_ms_masked.yaml"), [])
    cfg.MODEL.CLOUDS.SAM.MINIBATCH = True
    model = build_model(cfg)
    component = JointTraining.from_config(cfg)
    component.teacher.initialize(model)
    assert component.teacher.teacher  # the light and refinement heads, no backbone tensor
    assert all(n.startswith(VFMSegmentor.teacher_prefixes) for n in component.teacher.teacher)
    torch.manual_seed(0)
    image = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
    batch = [
        {"image": image, "sem_seg": torch.zeros(64, 64, dtype=torch.long)},
        {"image": image.flip(-1), "image_clean": image},
    ]
    labelled = component.labeler.label(model, batch, step=0)
    assert labelled[1]["sem_seg"].shape == (64, 64) and "image_clean" not in labelled[1]
    model.train()
    losses = model(labelled)
    assert all(torch.isfinite(v) for v in losses.values())


def test_a_vfm_model_self_trains_end_to_end(tmp_path: Path) -> None:
    """train_net's run on toy GTA5 + the unlabelled sd_toy with the DGVFM pipeline ("vfm_mmseg"):
    generated images reach the EMA teacher and SAM, and the VFM model trains and evaluates."""
    make_converted_toy_datasets(tmp_path / "data", seed=0, num_images=2, size=(64, 128))
    register_all_datasets(tmp_path / "data")
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), tmp_path / "sam.pth")
    cfg = load_config(
        str(CONFIG.parent / "dg_dinov2_ms_masked.yaml"),
        [
            "DATASETS.TRAIN", "('gta5', 'sd_toy')",
            "DATASETS.TEST", "('cityscapes_val',)",
            "DATALOADER.SAMPLER_TRAIN", "WeightedTrainingSampler",
            "DATASETS.TARGET_FACTOR", "2.0",
            "MODEL.CLOUDS.SAM.MINIBATCH", "True",
            "MODEL.CLOUDS.SAM.ENABLED", "True",
            "MODEL.CLOUDS.SAM.MODEL_TYPE", "tiny",
            "MODEL.CLOUDS.SAM.CHECKPOINT", str(tmp_path / "sam.pth"),
            "MODEL.CLOUDS.SAM.SIZE_REFERENCE", "(768, 768)",
            "MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD", "1",
            "SOLVER.MAX_ITER", "3",
            "OUTPUT_DIR", str(tmp_path / "out"),
        ],
    )  # fmt: skip
    cfg.freeze()
    with RecordedPredictions(VFMSegmentor) as recorded:
        results = run(cfg)
    assert_results_match(results["cityscapes_val"]["sem_seg"], recorded, 2, 19)
    dumped = {p.name for p in (tmp_path / "out" / "pseudo_labels").iterdir()}
    assert any(n.endswith("_after.png") for n in dumped)  # sd_toy images were SAM-refined
