"""The Processing algorithm runs through processing.run and writes the GeoPackage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer, QgsVectorLayer

from .conftest import HRO, EngineProcess

ENGINE_FIELDS = {"prompt", "score", "area_m2", "model", "run_id", "created_at", "source"}


@pytest.fixture(scope="module")
def processing_ready():
    from processing.core.Processing import Processing

    Processing.initialize()
    import processing

    return processing


def test_processing_run_writes_the_geopackage(
    processing_ready, plugin, engine: EngineProcess, settings_for, real_data: Path, tmp_path
) -> None:
    settings_for(data_dir=str(engine.data_dir))
    output = tmp_path / "cars_and_buildings.gpkg"
    result = processing_ready.run(
        "saymap:segmentbytext",
        {
            "INPUT": str(real_data / HRO),
            "PROMPTS": "car\nbuilding",
            "TILE": 0,
            "THRESHOLD": 0.5,
            "OUTPUT": str(output),
        },
    )
    assert Path(result["OUTPUT"]) == output and output.is_file()
    layer = QgsVectorLayer(str(output), "out", "ogr")
    assert layer.isValid()
    assert {f.name() for f in layer.fields()} >= ENGINE_FIELDS
    assert layer.crs() == QgsRasterLayer(str(real_data / HRO), "r").crs()
    assert result["FEATURES"] == layer.featureCount()
    assert {f["prompt"] for f in layer.getFeatures()} <= {"car", "building"}


def test_processing_extent_and_existing_output(
    processing_ready, plugin, engine: EngineProcess, settings_for, real_data: Path, tmp_path
) -> None:
    settings_for(data_dir=str(engine.data_dir))
    extent = quarter_extent(real_data / HRO)
    output = tmp_path / "quarter.gpkg"
    params = {
        "INPUT": str(real_data / HRO),
        "PROMPTS": "car",
        "EXTENT": extent,
        "OUTPUT": str(output),
    }
    processing_ready.run("saymap:segmentbytext", params)
    assert output.is_file()
    with sqlite3.connect(output) as db:
        table = db.execute("SELECT table_name FROM gpkg_contents").fetchone()[0]
        count = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    assert count == QgsVectorLayer(str(output), "o", "ogr").featureCount()
    # a second run refuses to overwrite unless asked, with the engine's sentence.
    # (QGIS 3.22 leaks the traceback of an algorithm that raised, with every frame below it:
    # this test's frame must hold no QGIS object of its own, or it outlives QgsApplication.)
    with pytest.raises(QgsProcessingException, match="exists"):
        processing_ready.run("saymap:segmentbytext", params)
    processing_ready.run("saymap:segmentbytext", {**params, "OVERWRITE": True})
    assert output.is_file()


def test_algorithm_runs_inside_a_model(
    processing_ready, plugin, engine: EngineProcess, settings_for, real_data: Path, tmp_path
) -> None:
    """What the graphical modeler builds: the algorithm as a child of a model."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    settings_for(data_dir=str(engine.data_dir))
    model = QgsProcessingModelAlgorithm("segment cars", "tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("raster", "Raster"), QgsProcessingModelParameter("raster")
    )
    child = QgsProcessingModelChildAlgorithm("saymap:segmentbytext")
    child.setChildId("segment")
    source = QgsProcessingModelChildParameterSource
    child.addParameterSources("INPUT", [source.fromModelParameter("raster")])
    child.addParameterSources("PROMPTS", [source.fromStaticValue("car")])
    output = QgsProcessingModelOutput("cars")
    output.setChildId("segment")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"cars": output})
    model.addChildAlgorithm(child)
    target = tmp_path / "model_cars.gpkg"

    result = processing_ready.run(
        model, {"raster": str(real_data / HRO), "segment:cars": str(target)}
    )

    assert Path(result["segment:cars"]) == target and target.is_file()
    fields = {f.name() for f in QgsVectorLayer(str(target), "o", "ogr").fields()}
    assert fields >= ENGINE_FIELDS


def quarter_extent(path: Path) -> str:
    """The raster's lower-left quarter as a Processing extent string."""
    raster = QgsRasterLayer(str(path), "r")
    e = raster.extent()
    return (
        f"{e.xMinimum()},{e.center().x()},{e.yMinimum()},{e.center().y()} [{raster.crs().authid()}]"
    )


@pytest.mark.slow
def test_processing_starts_an_engine_when_none_runs(
    processing_ready, plugin, tiny_model, settings_for, real_data: Path, tmp_path
) -> None:
    """No engine: the algorithm starts one (in Processing's thread, so with subprocess)."""
    from .conftest import install_model

    data_dir = tmp_path / "data"
    install_model(data_dir, tiny_model)
    settings_for(data_dir=str(data_dir))
    output = tmp_path / "o.gpkg"
    processing_ready.run(
        "saymap:segmentbytext",
        {"INPUT": str(real_data / HRO), "PROMPTS": "car", "OUTPUT": str(output)},
    )
    assert output.is_file()
    assert (data_dir / "engine.json").is_file()
    from saymap.engine_blocking import stop_started_engines

    stop_started_engines()
    assert not (data_dir / "engine.json").exists()


def test_processing_working_resolution_field(
    processing_ready, plugin, engine: EngineProcess, settings_for, real_data: Path, tmp_path
) -> None:
    """GSD reaches the engine: metres run, a word that is not auto/native is refused."""
    settings_for(data_dir=str(engine.data_dir))
    params = {"INPUT": str(real_data / HRO), "PROMPTS": "car", "TILE": 0, "THRESHOLD": 0.5}
    output = tmp_path / "coarse.gpkg"
    result = processing_ready.run(
        "saymap:segmentbytext", {**params, "GSD": "0.6 m", "OUTPUT": str(output)}
    )
    assert Path(result["OUTPUT"]) == output and output.is_file()
    with pytest.raises(QgsProcessingException, match="auto, native or metres"):
        processing_ready.run(
            "saymap:segmentbytext", {**params, "GSD": "fine", "OUTPUT": str(tmp_path / "x.gpkg")}
        )
    assert not (tmp_path / "x.gpkg").exists()


def test_processing_and_the_toolbar_send_the_same_request(
    processing_ready, plugin, engine: EngineProcess, settings_for, no_crs_raster, tmp_path, qtbot
) -> None:
    """One builder for both (issue 18): a file without a CRS whose layer the user gave one
    reaches the engine with that CRS from Processing too, and every option alike."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsProject

    from .test_toolbar_run import _last_job, add_raster, type_and_run

    settings_for(data_dir=str(engine.data_dir), output_dir=str(tmp_path / "toolbar"))
    layer = add_raster(QgsProject.instance(), no_crs_raster, "scan")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:26913"))  # set in Layer Properties
    output = tmp_path / "processing.gpkg"
    processing_ready.run(
        "saymap:segmentbytext", {"INPUT": layer, "PROMPTS": "car", "OUTPUT": str(output)}
    )
    from_processing = dict(_last_job(engine).request)
    assert QgsVectorLayer(str(output), "o", "ogr").crs().authid() == "EPSG:26913"

    type_and_run(qtbot, plugin, layer, "car")
    from_toolbar = dict(_last_job(engine).request)

    assert from_processing["assume_crs"] == from_toolbar["assume_crs"] == "EPSG:26913"
    differ = {k for k in from_processing if from_processing[k] != from_toolbar.get(k)}
    assert differ == {"output"}, {k: (from_processing[k], from_toolbar[k]) for k in differ}
