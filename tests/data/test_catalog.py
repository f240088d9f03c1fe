"""The dataset and metadata catalogs: registration, lazy resolution, clear errors."""

import pytest

from clouds.data.catalog import (
    DatasetCatalog,
    MetadataCatalog,
    UnknownDatasetError,
    dataset_class_names,
)


def test_register_get_and_double_registration() -> None:
    calls = []

    def loader() -> list[dict]:
        calls.append(1)
        return [{"file_name": "x.png"}]

    DatasetCatalog.register("_catalog_test", loader)
    try:
        assert calls == []  # registering loads nothing
        assert DatasetCatalog.get("_catalog_test") == [{"file_name": "x.png"}]
        DatasetCatalog.register("_catalog_test", loader)  # same loader: idempotent
        with pytest.raises(ValueError, match="_catalog_test"):
            DatasetCatalog.register("_catalog_test", lambda: [])
    finally:
        DatasetCatalog.remove("_catalog_test")


def test_unknown_dataset_error_names_it() -> None:
    with pytest.raises(UnknownDatasetError, match="no_such_set"):
        DatasetCatalog.get("no_such_set")


def test_resolver_registers_on_demand_and_metadata_defaults() -> None:
    def resolver(name: str) -> bool:
        if name != "_resolved_test" or name in DatasetCatalog.list():
            return name in DatasetCatalog.list()
        DatasetCatalog.register(name, lambda: [])
        MetadataCatalog.get(name).set(ignore_label=255)
        return True

    DatasetCatalog.add_resolver(resolver)
    try:
        assert DatasetCatalog.get("_resolved_test") == []
        meta = MetadataCatalog.get("_resolved_test")
        assert meta.ignore_label == 255
        assert meta.get("stuff_classes", "absent") == "absent"
    finally:
        DatasetCatalog.remove("_resolved_test")
        MetadataCatalog.remove("_resolved_test")
        DatasetCatalog._resolvers.remove(resolver)


def test_dataset_class_names_copies_the_list_and_names_a_dataset_without_one() -> None:
    MetadataCatalog.get("catalog_test_classes").set(stuff_classes=("road", "sky"))
    try:
        names = dataset_class_names("catalog_test_classes")
        assert names == ["road", "sky"]
        names.append("car")
        assert MetadataCatalog.get("catalog_test_classes").stuff_classes == ("road", "sky")
        with pytest.raises(UnknownDatasetError, match="'catalog_test_none' has no 'stuff_classes'"):
            dataset_class_names("catalog_test_none")
    finally:
        MetadataCatalog.remove("catalog_test_classes")
        MetadataCatalog.remove("catalog_test_none")
