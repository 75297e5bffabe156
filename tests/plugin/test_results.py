"""Results a user can tell apart and find: named prompt · raster · model, numbers rounded,
score labels only when asked, a temporary layer when chosen, never hidden in a switched-off
group, and Processing's results looking and living like the toolbar's. Driven through the
toolbar, Settings and Processing against a real engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsProject, QgsVectorLayer, QgsVectorLayerCache
from qgis.gui import QgsAttributeTableModel
from qgis.PyQt.QtCore import QLocale, Qt

from .conftest import HRO, TEST_MODEL, EngineProcess, IfaceStandIn
from .test_toolbar_run import _last_job, add_raster, type_and_run


def shown_in_attribute_table(layer: QgsVectorLayer, field: str) -> list[str]:
    """The column as QGIS's attribute table displays it."""
    cache = QgsVectorLayerCache(layer, 1000)
    model = QgsAttributeTableModel(cache)
    model.loadLayer()
    column = model.fieldCol(layer.fields().indexFromName(field))
    return [
        model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole)
        for row in range(model.rowCount())
    ]


# -- item 6: telling results apart --------------------------------------------------------------
def test_results_are_named_rounded_and_labelled_only_when_asked(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path), threshold=0.2)
    raster = add_raster(project, real_data / HRO, "hro")

    first = type_and_run(qtbot, plugin, raster, "building")
    plugin.toolbar.prompt_combo.lineEdit().clear()
    second = type_and_run(qtbot, plugin, raster, "building")

    assert first.name() == f"building · hro · {TEST_MODEL}"
    assert second.name().startswith(f"building · hro · {TEST_MODEL} · ")  # the time tells
    assert second.name() != first.name()
    # numbers rounded where they are shown: score to 2 decimals, area to 1
    assert first.featureCount() > 0
    scores = shown_in_attribute_table(first, "score")
    areas = shown_in_attribute_table(first, "area_m2")
    values = {f.id(): f for f in first.getFeatures()}
    locale = QLocale()
    assert sorted(scores) == sorted(locale.toString(f["score"], "f", 2) for f in values.values())
    assert sorted(areas) == sorted(locale.toString(f["area_m2"], "f", 1) for f in values.values())
    # score labels are off by default; Settings turns them on for the next result
    assert not first.labelsEnabled() and not second.labelsEnabled()
    plugin.open_settings()
    dialog = plugin.settings_dialog
    assert not dialog.score_labels_check.isChecked()
    qtbot.mouseClick(dialog.score_labels_check, Qt.MouseButton.LeftButton)
    dialog.accept()
    plugin.toolbar.prompt_combo.lineEdit().clear()
    labelled = type_and_run(qtbot, plugin, raster, "car")
    assert labelled.labelsEnabled()
    assert labelled.name() == f"car · hro · {TEST_MODEL}"


def test_model_field_records_the_registered_model(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path), threshold=0.2)
    raster = add_raster(QgsProject.instance(), real_data / HRO, "hro")
    result = type_and_run(qtbot, plugin, raster, "building")
    assert result.featureCount() > 0
    assert {f["model"] for f in result.getFeatures()} == {TEST_MODEL}


# -- item 7: where results go --------------------------------------------------------------------
def test_temporary_layer_chosen_in_settings(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot, iface: IfaceStandIn
) -> None:
    from saymap.settings import OUTPUT_TEMPORARY, load_settings

    project = QgsProject.instance()
    results = tmp_path / "kept"
    settings_for(data_dir=str(engine.data_dir), output_dir=str(results), threshold=0.2)
    raster = add_raster(project, real_data / HRO, "hro")
    plugin.open_settings()
    dialog = plugin.settings_dialog
    dialog.output_mode_combo.setCurrentIndex(dialog.output_mode_combo.findData(OUTPUT_TEMPORARY))
    dialog.accept()
    assert load_settings().output_mode == OUTPUT_TEMPORARY

    result = type_and_run(qtbot, plugin, raster, "building")

    assert result.providerType() == "memory"  # QGIS's temporary layer
    assert result.featureCount() > 0 and result.crs() == raster.crs()
    assert {f.name() for f in result.fields()} >= {"prompt", "score", "area_m2"}
    assert project.layerTreeRoot().findGroup("SayMap").findLayer(result.id()) is not None
    assert not results.exists() or not list(results.iterdir())  # nothing kept on disk
    assert not Path(_last_job(engine).request["output"]).exists()  # the engine's file removed
    assert any("in a temporary layer" in item.text() for item in iface.bar.items())


def test_a_hidden_saymap_group_is_shown_again_and_the_user_told(
    plugin, iface: IfaceStandIn, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path))
    raster = add_raster(project, real_data / HRO, "hro")
    outer = project.layerTreeRoot().addGroup("analysis")
    group = outer.addGroup("SayMap")
    outer.setItemVisibilityChecked(False)  # the user switched off the group around it
    assert not group.isVisible()

    result = type_and_run(qtbot, plugin, raster, "car")

    node = group.findLayer(result.id())
    assert node is not None and node.isVisible() and group.isVisible()
    told = [item.text() for item in iface.bar.items()]
    assert any("“SayMap” group was hidden; it is shown again" in text for text in told), told


@pytest.fixture(scope="module")
def processing_ready():
    from processing.core.Processing import Processing

    Processing.initialize()
    import processing

    return processing


def test_processing_results_get_the_toolbars_name_style_and_group(
    processing_ready, plugin, engine: EngineProcess, settings_for, real_data, tmp_path
) -> None:
    project = QgsProject.instance()
    settings_for(data_dir=str(engine.data_dir), threshold=0.2)
    raster = add_raster(project, real_data / HRO, "hro")
    group = project.layerTreeRoot().addGroup("SayMap")
    group.setItemVisibilityChecked(False)
    output = tmp_path / "processing_cars.gpkg"

    processing_ready.runAndLoadResults(
        "saymap:segmentbytext", {"INPUT": raster, "PROMPTS": "building", "OUTPUT": str(output)}
    )

    loaded = [layer for layer in project.mapLayers().values() if layer.id() != raster.id()]
    assert len(loaded) == 1
    result = loaded[0]
    assert result.name() == f"building · hro · {TEST_MODEL}"
    assert group.findLayer(result.id()) is not None and group.isVisible()
    assert result.renderer().symbol().color().alpha() < 255  # the shipped style
    assert not result.labelsEnabled()
    setup = result.editorWidgetSetup(result.fields().indexFromName("score"))
    assert setup.type() == "Range" and setup.config()["Precision"] == 2
