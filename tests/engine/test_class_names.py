"""A bare class name means every instance ("building" → "all buildings"); sentences run as
typed; an unknown bare noun is warned about with the classes the model knows."""

from __future__ import annotations

from pathlib import Path

import pytest

from saymap.engine.class_names import (
    Vocabulary,
    interpret_prompt,
    interpret_prompts,
    plural,
)

CARD = {
    "classes": ["airplane", "building", "road", "storage tank", "tree", "vehicle", "water"],
    "synonyms": {"building": ["hut"]},
}


@pytest.mark.parametrize(
    ("prompt", "text"),
    [
        ("building", "all buildings"),
        ("Buildings", "all buildings"),
        ("all buildings", "all buildings"),
        ("  the   BUILDINGS ", "all buildings"),
        ("huts", "all buildings"),  # a synonym the card adds
        ("car", "all vehicles"),
        ("cars", "all vehicles"),
        ("tank", "all storage tanks"),
        ("storage tanks", "all storage tanks"),
        ("vegetation", "all trees"),
        ("water", "all water bodies"),
    ],
)
def test_class_names_singular_plural_and_synonyms_mean_all_of_them(prompt: str, text: str) -> None:
    reading = interpret_prompt(prompt, Vocabulary.from_card(CARD))
    assert reading.text == text and reading.warning is None and reading.prompt == prompt


@pytest.mark.parametrize(
    "sentence",
    [
        "the building in the top right corner",
        "the storage tanks by the river",
        "the largest building",
        "cars in the parking lot",
    ],
)
def test_sentences_run_as_typed(sentence: str) -> None:
    reading = interpret_prompt(sentence, Vocabulary.from_card(CARD))
    assert reading.text == sentence and reading.class_name is None and reading.warning is None


def test_a_class_of_its_own_wins_over_another_class_synonym() -> None:
    card = {"classes": ["tree", "vegetation"]}
    assert interpret_prompt("vegetation", Vocabulary.from_card(card)).text == "all vegetation"


def test_unknown_bare_noun_is_warned_about_with_the_known_classes(caplog) -> None:
    [reading] = interpret_prompts(["silos"], CARD)
    assert reading.text == "silos" and reading.class_name is None
    assert reading.warning is not None and "not a class" in reading.warning
    assert all(name in reading.warning for name in CARD["classes"])
    assert sum("not a class" in r.getMessage() for r in caplog.records) == 1


def test_without_a_vocabulary_nothing_is_rewritten() -> None:
    [reading] = interpret_prompts(["building"], None)
    assert reading.text == "building" and reading.warning is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [("building", "buildings"), ("storage tank", "storage tanks"), ("bus", "buses"),
     ("factory", "factories"), ("water", "water bodies")],
)  # fmt: skip
def test_plural(name: str, expected: str) -> None:
    assert plural(name) == expected


def test_the_pipeline_runs_the_group_expression_and_reports_the_warning(tmp_path: Path) -> None:
    from saymap.engine.infer import SegmentOptions, segment_raster
    from tests.engine.test_resolution import scene, segmenter

    raster = scene(tmp_path / "s.tif", 0.3)
    model = segmenter(None)
    model.card = dict(CARD)
    options = SegmentOptions(tile=128, overlap=32, device="cpu")
    result = segment_raster(
        raster, ["Buildings", "silo"], tmp_path / "o.gpkg", model=model, options=options
    )
    assert result.model_prompts == ("all buildings", "silo")
    assert model.encoded == [["all buildings"], ["silo"]]  # what the model read
    assert any("'silo' is not a class" in w for w in result.warnings)
    literal = segment_raster(
        raster, ["Buildings"], tmp_path / "l.gpkg", model=model,
        options=SegmentOptions(tile=128, overlap=32, device="cpu", literal=True),
    )  # fmt: skip
    assert literal.model_prompts == ("Buildings",)
