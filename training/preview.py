"""What a train request would train and validate on, decided by the code training runs:
the same dataset builder, validation split, WREL pools and stage plan, with no pixel read
and nothing trained. The fine-tune wizard shows it before it starts a job, so the count of
sentences it calls usable is the count the trainer will use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from saymap.engine.errors import DatasetError
from saymap.training.data_sources import request_dataset
from saymap.training.datasets import LayerSubset
from saymap.training.recipe import Recipe
from saymap.training.splits import assign_validation

# Where a sentence of the request ends up.
FATES = ("train", "validation", "edge", "held_out", "unused")
# training/sentences.py: "<raster>/<ids>/sentence<n>" (feature ids), "<raster>/geometry<n>/sentence"
_SENTENCE_ID = re.compile(r"/(?:[^/]*/sentence(\d+)|geometry(\d+)/sentence)$")


@dataclass(frozen=True)
class SentenceFate:
    fate: str  # one of FATES
    class_name: str | None


@dataclass
class TrainPreview:
    sentences: list[SentenceFate]  # one per request sentence, in its order
    train: dict[str, int] = field(default_factory=dict)  # {"weak": n, "full": n} chips
    validation: dict[str, int] = field(default_factory=dict)
    edge: int = 0  # chips across the validation area's edge, in neither set
    held_out: int = 0  # chips kept back for the scorecard's real-imagery hold-out
    classes: dict[str, int] = field(default_factory=dict)  # training class-name chips
    method: str = "lrb-wrel"
    problem: str | None = None  # why the job would fail before its first step, or None

    def to_json(self) -> dict:
        return {
            "sentences": [{"fate": s.fate, "class_name": s.class_name} for s in self.sentences],
            "train": self.train,
            "validation": self.validation,
            "edge": self.edge,
            "held_out": self.held_out,
            "classes": self.classes,
            "method": self.method,
            "problem": self.problem,
        }


def preview_request(dataset: dict, recipe: Recipe, gsd_m: float | None) -> TrainPreview:
    """The request's chips and sentences as training will split them; DatasetError when the
    dataset cannot be built at all (no label overlaps a raster, a bad class field, …)."""
    from saymap.training.schedule import plan_stages
    from saymap.training.wrel import split_pools

    built, area, fraction = request_dataset(dataset, recipe.data.chip_size, gsd_m)
    chosen = assign_validation(built, range(len(built)), area=area, fraction=fraction)
    pools = split_pools(
        LayerSubset(built, chosen.train),
        recipe.data.full_ratio,
        recipe.run.seed,
        getattr(recipe.data, "source_repeat", None),
    )
    full_train = {chosen.train[i] for i in pools.full}
    val = set(chosen.val or ())
    edge, held = set(chosen.edge), set(chosen.held)

    def fate(k: int) -> str:
        if k in full_train:
            return "train"
        if k in val:
            return "validation"
        if k in held:
            return "held_out"
        if k in edge:
            return "edge"
        return "unused"

    by_item: dict[int, int] = {}
    for k, record in enumerate(built.records):
        found = _SENTENCE_ID.search(record.sample_id) if record.kind == "full" else None
        if found:
            by_item.setdefault(int(found.group(1) or found.group(2)), k)
    n_items = len(dataset.get("sentences") or ())
    sentences = []
    for item in range(1, n_items + 1):
        k = by_item.get(item)
        sentences.append(
            SentenceFate("unused", None)
            if k is None
            else SentenceFate(fate(k), built.records[k].class_name)
        )

    def kinds(indices: list[int]) -> dict[str, int]:
        kinds = [built.records[k].kind for k in indices]
        return {"weak": kinds.count("weak"), "full": kinds.count("full")}

    classes: dict[str, int] = {}
    for k in chosen.train:
        if built.records[k].kind == "weak":
            name = built.records[k].class_name
            classes[name] = classes.get(name, 0) + 1
    problem = chosen.problem
    if problem is None:
        try:
            plan_stages(recipe, pools)
        except DatasetError as exc:
            problem = str(exc)
    return TrainPreview(
        sentences=sentences,
        train={"weak": kinds(chosen.train)["weak"], "full": len(full_train)},
        validation=kinds(chosen.val or []),
        edge=len(edge),
        held_out=len(held),
        classes=classes,
        method=recipe.wrel.method,
        problem=problem,
    )
