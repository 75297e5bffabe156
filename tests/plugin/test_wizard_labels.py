"""Issue 17, item 3: the wizard never offers SayMap's own output as training labels.

In real QGIS against a real engine: after a toolbar run the project's first polygon layer is
a SayMap result (class field "prompt"); the wizard's Data page picks the layer that has a
class-like field instead, or none (and says why Next waits), also for a result GeoPackage
opened by hand, and warns when the user chooses a result anyway.
"""

from __future__ import annotations

import pytest
from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtWidgets import QWizard

from .conftest import HRO, KAMPALA, EngineProcess
from .test_toolbar_run import add_raster, type_and_run
from .test_wizard import LABELS


def open_wizard(qtbot, plugin) -> QWizard:
    previous = getattr(plugin, "wizard", None)
    plugin.toolbar.finetune_action.trigger()
    qtbot.waitUntil(lambda: getattr(plugin, "wizard", None) not in (None, previous), timeout=30_000)
    return plugin.wizard


@pytest.mark.real_data
def test_saymap_results_are_never_the_default_labels(
    plugin, engine: EngineProcess, settings_for, real_data, tmp_path, qtbot
) -> None:
    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path / "results"))
    project = QgsProject.instance()
    add_raster(project, real_data / KAMPALA, "kampala")
    buildings = QgsVectorLayer(str(real_data / LABELS), "buildings", "ogr")
    project.addMapLayer(buildings)
    # Fields the wizard must not mistake for classes; a layer with none of them is no default.
    plain = QgsVectorLayer("Polygon?crs=EPSG:3857&field=name:string", "parcels", "memory")
    project.addMapLayer(plain)
    result = type_and_run(qtbot, plugin, add_raster(project, real_data / HRO, "hro"), "building")
    assert result.fields().indexOf("prompt") >= 0
    first = project.layerTreeRoot().findLayers()[0].layer()
    assert first is result  # the run put its result at the top of the Layers panel

    wizard = open_wizard(qtbot, plugin)
    data = wizard.data_page
    assert data.label_layer() is buildings
    assert data.class_field.currentField() == "class"
    # Still there to choose by hand, with a warning when chosen.
    offered = {data.labels.layer(k) for k in range(data.labels.count())}
    assert result in offered
    data.labels.setLayer(result)
    data.class_field.setField("prompt")
    assert "is a SayMap result" in data.warnings.text()
    wizard.reject()

    # Without the real labels, nothing is chosen, and the page says why Next waits.
    project.removeMapLayer(buildings.id())
    wizard = open_wizard(qtbot, plugin)
    data = wizard.data_page
    assert data.label_layer() is None
    assert data.why.text().startswith("Choose a polygon label layer with a class field")
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.reject()

    # A result GeoPackage opened by hand carries no mark: its fields give it away.
    by_hand = QgsVectorLayer(result.source(), "opened by hand", "ogr")
    assert by_hand.isValid() and by_hand.customProperty("saymap/result") is None
    project.addMapLayer(by_hand)
    landuse = QgsVectorLayer(
        "Polygon?crs=EPSG:3857&field=name:string&field=LandUse:string", "zoning", "memory"
    )
    project.addMapLayer(landuse)
    wizard = open_wizard(qtbot, plugin)
    data = wizard.data_page
    assert data.label_layer() is landuse  # a class-like field, whatever its case
    assert data.class_field.currentField() == "LandUse"
    wizard.reject()
