"""Issue 15, item 3: "Suggest sentences" on the wizard's Sentences page.

Real QGIS and a real engine process: the button asks the engine, rows appear with sentences
about distinct features (none about a feature that has a row already), each row's feature
and geometry are the label layer's own, and the engine's preview says every one of them
trains (the suggestions skip the validation strip). With nothing to suggest, one line says so.
"""

from __future__ import annotations

import random
from pathlib import Path

from osgeo import gdal, ogr, osr
from qgis.core import QgsGeometry
from qgis.PyQt.QtCore import Qt

from .conftest import EngineProcess, engine_get
from .test_wizard import settled
from .test_wizard_sentences import open_on_sentences

WEST, NORTH, PIXEL, SIDE = 3630000.0, 35000.0, 0.3, 512  # web Mercator, as kampala
SUGGEST_TIMEOUT_MS = 300_000  # the engine shares the CPU with whatever else runs


def write_scene(folder: Path, boxes: list[tuple[str, float, float, float, float]]) -> tuple:
    """A 3-band GeoTIFF and a GeoPackage of (class, x, y, width, height) boxes in metres
    from the raster's top-left corner, written with QGIS's own GDAL."""
    folder.mkdir(parents=True, exist_ok=True)
    crs = osr.SpatialReference()
    crs.ImportFromEPSG(3857)
    raster = folder / "scene.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(raster), SIDE, SIDE, 3, gdal.GDT_Byte)
    dataset.SetGeoTransform((WEST, PIXEL, 0.0, NORTH, 0.0, -PIXEL))
    dataset.SetProjection(crs.ExportToWkt())
    for band in (1, 2, 3):
        dataset.GetRasterBand(band).Fill(90 + 20 * band)
    dataset = None
    labels = folder / "labels.gpkg"
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(labels))
    layer = source.CreateLayer("labels", crs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for name, x, y, w, h in boxes:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("class", name)
        x0, y1 = WEST + x, NORTH - y
        ring = f"{x0} {y1 - h}, {x0 + w} {y1 - h}, {x0 + w} {y1}, {x0} {y1}, {x0} {y1 - h}"
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON (({ring}))"))
        layer.CreateFeature(feature)
    source = None
    return raster, labels


def random_boxes(n: int, seed: int = 0) -> list[tuple[str, float, float, float, float]]:
    """Buildings and storage tanks of varied sizes, none closer than a metre to another."""
    rng = random.Random(seed)
    span = SIDE * PIXEL
    out: list[tuple[str, float, float, float, float]] = []
    while len(out) < n:
        name = "building" if rng.random() < 0.75 else "storage tank"
        lo, hi = (4.0, 15.0) if name == "building" else (3.0, 7.0)
        w, h = rng.uniform(lo, hi), rng.uniform(lo, hi)
        x, y = rng.uniform(1, span - w - 1), rng.uniform(1, span - h - 1)
        if all(
            x > ox + ow + 1 or ox > x + w + 1 or y > oy + oh + 1 or oy > y + h + 1
            for _, ox, oy, ow, oh in out
        ):
            out.append((name, x, y, w, h))
    return out


def click_suggest(qtbot, page) -> None:
    qtbot.mouseClick(page.suggest_button, Qt.MouseButton.LeftButton)
    assert not page.suggest_button.isEnabled()  # until the engine answers
    qtbot.waitUntil(page.suggest_button.isEnabled, timeout=SUGGEST_TIMEOUT_MS)


def test_suggested_rows_are_about_distinct_features_and_train(
    plugin, iface, engine: EngineProcess, settings_for, tmp_path, qtbot
) -> None:
    from saymap.wizard.page_sentences import FEATURE_ID_ROLE

    settings_for(data_dir=str(engine.data_dir))
    raster, labels_path = write_scene(tmp_path / "scene", random_boxes(45))
    wizard, labels = open_on_sentences(qtbot, plugin, iface, raster, labels_path)
    settings = wizard.settings_page
    settings.chip.setCurrentIndex(settings.chip.findData(128))
    page = wizard.sentences_page
    written = labels.getFeature(1)
    page.add_feature(written, "the building I picked")  # the analyst's own row stays
    settled(qtbot, wizard)

    click_suggest(qtbot, page)
    rows = range(1, page.table.rowCount())
    assert len(rows) >= 3, page.suggest_note.text()
    assert page.suggest_note.text().startswith(f"{len(rows)} suggested sentences added")
    fids = [page.table.item(r, 2).data(FEATURE_ID_ROLE) for r in rows]
    assert len(set(fids)) == len(fids) and written.id() not in fids
    for row, fid in zip(rows, fids, strict=True):
        feature = labels.getFeature(fid)
        assert feature.isValid(), fid
        assert page.table.item(row, 0).text().strip()
        assert page.table.item(row, 1).text() == feature["class"]
        wkt = page.table.item(row, 2).data(Qt.ItemDataRole.UserRole)
        assert QgsGeometry.fromWkt(wkt).isGeosEqual(feature.geometry()), fid
    assert page.table.item(0, 0).text() == "the building I picked"
    # The engine's preview, on the request the wizard will post: every suggestion trains.
    settled(qtbot, wizard)
    assert [page.row_fate(r) for r in rows] == ["train"] * len(rows)

    # Again: only features without a row yet.
    click_suggest(qtbot, page)
    more = [page.table.item(r, 2).data(FEATURE_ID_ROLE) for r in range(page.table.rowCount())]
    assert len(set(more)) == len(more)
    wizard.reject()


def test_nothing_to_suggest_is_said_in_one_line(
    plugin, iface, engine: EngineProcess, settings_for, tmp_path, qtbot
) -> None:
    settings_for(data_dir=str(engine.data_dir))
    raster, labels_path = write_scene(tmp_path / "one", [("building", 60.0, 60.0, 12.0, 9.0)])
    wizard, _ = open_on_sentences(qtbot, plugin, iface, raster, labels_path)
    page = wizard.sentences_page
    click_suggest(qtbot, page)
    assert page.table.rowCount() == 0
    assert page.suggest_note.text().startswith("No sentence could be suggested")
    assert "\n" not in page.suggest_note.text()
    wizard.reject()


def test_the_client_matches_the_served_openapi_document(engine: EngineProcess) -> None:
    """What the client sends and reads is what POST /v1/train/suggest documents."""
    import dataclasses

    from saymap.engine_client import SentenceSuggestion

    document = engine_get(engine, "/openapi.json")
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/v1/train/suggest"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/TrainSuggestRequest")
    sent = {"base_model", "recipe", "dataset", "limit", "seed"}  # EngineClient.train_suggest
    assert sent == set(schemas["TrainSuggestRequest"]["properties"])
    read = {f.name for f in dataclasses.fields(SentenceSuggestion)}
    assert read == set(schemas["SentenceSuggestion"]["properties"])
    assert set(schemas["TrainSuggestions"]["properties"]) == {"suggestions"}
