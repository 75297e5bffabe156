"""What a bare class name means at inference: every instance of the class.

WREL trains a bare class name ("building") as a weak label that points at one instance; a
mapping user who types "building" means all of them. So a prompt that is only a class the
model knows ("building", "Buildings", "all the buildings", "cars" for vehicle) is run as the
group expression the model was trained on ("all buildings"). Anything longer is a sentence
and runs as typed. A single unknown noun gets a warning naming the classes the model knows.

The vocabulary comes from the model card (`classes`, `synonyms`, `plurals`); no torch here,
so the CLI, the server and the plugin's completions can all use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# What every model trained here knows; a card may add to both.
DEFAULT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "vehicle": ("car", "cars", "vehicles", "truck", "trucks"),
    "storage tank": ("tank", "tanks", "oil tank", "oil tanks"),
    "tree": ("vegetation", "trees", "forest"),
    "building": ("house", "houses", "roof", "roofs"),
    "airplane": ("plane", "planes", "aircraft"),
    "ship": ("boat", "boats", "vessel", "vessels"),
    "water": ("water body", "water bodies", "river", "lake", "sea"),
}
IRREGULAR_PLURALS = {  # by last word
    "water": "water bodies", "aircraft": "aircraft", "vegetation": "vegetation",
    "person": "people", "leaf": "leaves", "child": "children",
}  # fmt: skip
GROUP_TEMPLATE = "all {plural}"  # the synthetic generator's group wording ("all buildings")
_LEADING = re.compile(r"^(?:(?:all|every|each|the|of|any)\s+)+")
_WORD = re.compile(r"^[a-z][a-z -]*$")


def plural(name: str) -> str:
    """English plural of a class name: building → buildings, storage tank → storage tanks."""
    head, _, last = name.rpartition(" ")
    if last in IRREGULAR_PLURALS:
        last = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def group_expression(class_name: str, plural_name: str | None = None) -> str:
    """The words group samples are trained with and a bare class name runs as."""
    return GROUP_TEMPLATE.format(plural=plural_name or plural(class_name))


def singular(word: str) -> str:
    """Undo the common English plural endings (for matching only)."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _key(text: str) -> str:
    words = " ".join(text.lower().replace("_", " ").split())
    words = _LEADING.sub("", words).strip()
    head, _, last = words.rpartition(" ")
    return f"{head} {singular(last)}".strip()


@dataclass(frozen=True)
class Vocabulary:
    """A model's classes and the words that mean each of them."""

    classes: tuple[str, ...]
    lookup: dict[str, str]  # normalised word → canonical class
    plurals: dict[str, str]

    @classmethod
    def from_card(cls, card: dict[str, Any] | None) -> Vocabulary:
        card = card or {}
        classes = tuple(str(c) for c in card.get("classes", []) if str(c).strip())
        synonyms = {k: tuple(v) for k, v in DEFAULT_SYNONYMS.items()}
        for name, words in (card.get("synonyms") or {}).items():
            synonyms[str(name)] = synonyms.get(str(name), ()) + tuple(str(w) for w in words)
        plurals = {c: plural(c) for c in classes}
        plurals.update({str(k): str(v) for k, v in (card.get("plurals") or {}).items()})
        lookup: dict[str, str] = {}
        for name in classes:  # a class's own name wins over another class's synonym
            lookup[_key(name)] = lookup[_key(plurals[name])] = name
        for name in classes:
            for word in synonyms.get(name, ()):
                lookup.setdefault(_key(word), name)
        return cls(classes, lookup, plurals)

    def match(self, prompt: str) -> str | None:
        """The class a bare class-name prompt means, or None for anything else."""
        return self.lookup.get(_key(prompt))

    def group_expression(self, class_name: str) -> str:
        return group_expression(class_name, self.plurals.get(class_name))


@dataclass(frozen=True)
class Interpretation:
    """How one prompt is run: `text` goes to the model; `prompt` is what the user typed."""

    prompt: str
    text: str
    class_name: str | None  # set when the prompt was read as "every <class>"
    warning: str | None = None


def is_bare_noun(prompt: str) -> bool:
    """One or two plain words with no relation or attribute words: 'silo', 'solar panels'."""
    words = _key(prompt).split()
    return 1 <= len(words) <= 2 and bool(_WORD.match(" ".join(words)))


def interpret_prompt(prompt: str, vocabulary: Vocabulary) -> Interpretation:
    name = vocabulary.match(prompt)
    if name is not None:
        return Interpretation(prompt, vocabulary.group_expression(name), name)
    known_word = any(singular(w) in vocabulary.lookup for w in _key(prompt).split())
    if vocabulary.classes and is_bare_noun(prompt) and not known_word:
        warning = (
            f"{prompt!r} is not a class this model was trained on "
            f"({', '.join(vocabulary.classes)}); it runs as a sentence and may find nothing"
        )
        return Interpretation(prompt, prompt, None, warning)
    return Interpretation(prompt, prompt, None)


def interpret_prompts(prompts: Sequence[str], card: dict[str, Any] | None) -> list[Interpretation]:
    """Each prompt as the model should read it; warnings are logged once each."""
    vocabulary = Vocabulary.from_card(card)
    out = [interpret_prompt(p, vocabulary) for p in prompts]
    for item in out:
        if item.warning:
            log.warning(item.warning)
        elif item.class_name is not None and item.text != item.prompt:
            log.info("%r is a class name: segmenting %r", item.prompt, item.text)
    return out
