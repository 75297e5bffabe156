"""The wizard's pure rules (plan.py): strips on every side, what the Sentences page counts
and says, where a failed job's fix belongs, and the recipe for naive WREL."""

from __future__ import annotations

import pytest


def test_the_validation_strip_lies_on_the_side_asked_for(plugins_dir) -> None:
    from saymap.wizard.plan import describe_validation, strip_bounds

    extent = (0.0, 0.0, 100.0, 50.0)
    assert strip_bounds(extent, 0.2, "west") == ((0.0, 0.0, 20.0, 50.0), "west")
    assert strip_bounds(extent, 0.2, "north") == ((0.0, 40.0, 100.0, 50.0), "north")
    assert strip_bounds(extent, 0.2, "south") == ((0.0, 0.0, 100.0, 10.0), "south")
    assert strip_bounds(extent, 0.2) == strip_bounds(extent, 0.2, "east")  # wide: east
    with pytest.raises(ValueError, match="no side"):
        strip_bounds(extent, 0.2, "up")
    assert (
        describe_validation("strip", 0.2, extent, "auto") == "the east 20 % of the labels' extent"
    )
    assert describe_validation("fraction", 0.25, None, "auto").startswith("25 % of the features")


def test_only_sentences_that_train_are_counted(plugins_dir) -> None:
    from saymap.wizard.plan import (
        FEW_SAMPLES_NOTE,
        TrainPreview,
        sentence_advice,
        sentence_problem,
    )

    preview = TrainPreview.from_json(
        {
            "sentences": [
                {"fate": "train", "class_name": "building"},
                {"fate": "validation", "class_name": "building"},
                {"fate": "edge", "class_name": "building"},
            ],
            "train": {"weak": 40, "full": 1},
            "validation": {"weak": 10, "full": 1},
            "edge": 3,
            "held_out": 0,
            "method": "lrb-wrel",
            "problem": None,
        }
    )
    assert preview.usable() == {"building": 1}
    lines = sentence_advice({"building": 64}, {"building": 3}, preview.usable())
    assert lines == ["building: 64 labelled features, 1 of 3 sentences train (add 2)"]
    assert sentence_advice({"building": 64}, {"building": 3}) == [
        "building: 64 labelled features, 3 sentences (enough)"  # before the engine answered
    ]
    assert sentence_problem(preview, 3, naive=False) is None
    assert preview.split_summary() == (
        "trains on 40 class-name chips and 1 sentence; validates on 11 chips; "
        "3 chips across its edge left out"
    )
    few = TrainPreview.from_json({"train": {"weak": 6, "full": 1}, "validation": {"weak": 2}})
    assert few.split_summary().startswith("trains on 6 class-name chips and 1 sentence; ")
    assert few.split_summary().endswith(". " + FEW_SAMPLES_NOTE)
    none_train = TrainPreview.from_json(
        {"sentences": [{"fate": "validation"}, {"fate": "held_out"}], "train": {"full": 0}}
    )
    why = sentence_problem(none_train, 2, naive=False)
    assert why.startswith("None of the 2 sentences can train (1 validation area, 1 hold-out)")
    assert sentence_problem(none_train, 2, naive=True) is None
    assert sentence_problem(None, 0, naive=False).startswith("Add a sentence")


def test_a_failure_points_at_the_page_where_its_cause_is_set(plugins_dir) -> None:
    from saymap.wizard.plan import DATA_PAGE, SENTENCES_PAGE, SETTINGS_PAGE, fix_page

    assert fix_page("LRB-WREL stage 1 needs full expressions (sentences)") == SENTENCES_PAGE
    assert fix_page("a model named 'x' is already registered; choose another") == SETTINGS_PAGE
    assert fix_page("the validation area overlaps none of the training rasters") == SETTINGS_PAGE
    assert fix_page("no field 'klass' in the labels file") == DATA_PAGE
    assert fix_page("the training raster /x.tif does not exist") == DATA_PAGE
    assert fix_page("CUDA out of memory") == SETTINGS_PAGE
    assert fix_page("something nobody foresaw") == SETTINGS_PAGE


def test_naive_wrel_trains_without_the_bank_stage(plugins_dir) -> None:
    from saymap.wizard.plan import RECIPES, build_recipe, total_steps

    lrb = build_recipe(RECIPES[0], 30, 128)
    naive = build_recipe(RECIPES[0], 30, 128, method="naive-wrel")
    assert lrb["wrel"]["method"] == "lrb-wrel" and naive["wrel"]["method"] == "naive-wrel"
    assert RECIPES[0].base["wrel"]["method"] == "lrb-wrel"  # the preset is left as it was
    assert total_steps(lrb) == 30 + lrb["wrel"]["bank_steps"]
    assert total_steps(naive) == 30
