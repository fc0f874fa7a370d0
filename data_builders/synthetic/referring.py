"""Referring expressions built from instance attributes, with the instances each one picks.

Every expression is checked against the whole scene before it is emitted: "the red word" is only
said when exactly one instance is red; with two red words it becomes "the red words" (several
targets); a colour that no instance has gives a no-target expression (gRefCOCO's generalized cases). A scene
with a word that has no colour name (a low-contrast word in doubt, ``colours.seen_name``) gets no colour
expression at all: that word could be taken for the colour asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from data_builders.synthetic.colours import NAMES as COLOUR_NAMES
from data_builders.synthetic.phrasings import phrase
from data_builders.synthetic.scene import Instance

KINDS = ("content", "colour", "colour_multi", "position", "extreme", "largest", "smallest", "plate", "curved")
KINDS += ("all", "none_colour", "none_content")
_AREA_MARGIN = 1.5  # "largest" only when it beats the runner-up by this factor, so a person would agree


@dataclass(frozen=True, kw_only=True)
class ReferringExpression:
    """A sentence and the instances it refers to.

    Attributes:
        sentence: e.g. "the red word", "the text at the top left", "the word 'EXIT'".
        targets: indices into the scene's instances; empty for a no-target expression.
        kind: which rule produced it (one of KINDS).
    """

    sentence: str
    targets: tuple[int, ...]
    kind: str
    slot: str = ""
    """What the sentence names (a colour, a word, a position, a sign's colour; "" for the others), so
    ``phrasings.phrase`` can say it another way."""

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "targets": list(self.targets), "kind": self.kind}


def _canonical(kind: str, targets: tuple[int, ...], slot: str = "") -> ReferringExpression:
    return ReferringExpression(sentence=phrase(kind, slot), targets=targets, kind=kind, slot=slot)


def rephrase(
    expressions: Sequence[ReferringExpression], *, split: str, rng: np.random.Generator
) -> list[ReferringExpression]:
    """The same expressions said with templates of phrasing pool ``split`` (canonical: unchanged)."""
    if split == "canonical":
        return list(expressions)
    return [replace(e, sentence=phrase(e.kind, e.slot, split=split, rng=rng)) for e in expressions]


def _by(instances: Sequence[Instance], key) -> dict:
    groups: dict = {}
    for i, inst in enumerate(instances):
        groups.setdefault(key(inst), []).append(i)
    return groups


def _ranked(instances: Sequence[Instance]) -> list[ReferringExpression]:
    if len(instances) < 2:
        return []
    order = sorted(range(len(instances)), key=lambda i: instances[i].area)
    areas = [instances[i].area for i in order]
    out = []
    if areas[-1] >= _AREA_MARGIN * areas[-2]:
        out.append(_canonical("largest", (order[-1],)))
    if areas[1] >= _AREA_MARGIN * areas[0]:
        out.append(_canonical("smallest", (order[0],)))
    return out


def _extremes(instances: Sequence[Instance]) -> list[ReferringExpression]:
    """The word furthest towards a side ("the topmost word", "the rightmost text"), said only when its box
    lies wholly beyond every other box on that axis (no row, or column, shared), so that a person would
    agree which word it is."""
    if len(instances) < 2:
        return []
    out = []
    for side, axis, sign in (("top", 1, 1), ("bottom", 1, -1), ("left", 0, 1), ("right", 0, -1)):
        # each box's extent on the axis, measured from that side: (nearer edge, further edge)
        spans = [sorted((sign * x.box[axis], sign * x.box[axis + 2])) for x in instances]
        best = min(range(len(spans)), key=lambda i: sum(spans[i]))
        if all(spans[best][1] <= span[0] for i, span in enumerate(spans) if i != best):
            out.append(_canonical("extreme", (best,), side))
    return out


def candidate_expressions(instances: Sequence[Instance]) -> list[ReferringExpression]:
    """Every unambiguous expression for these instances (deterministic order)."""
    out: list[ReferringExpression] = []
    for idx in _by(instances, lambda x: x.text.lower()).values():
        if len(idx) == 1:
            out.append(_canonical("content", tuple(idx), instances[idx[0]].text))
    by_colour = _by(instances, lambda x: x.colour) if all(x.colour for x in instances) else {}
    for colour, idx in by_colour.items():
        if len(idx) == 1:
            out.append(_canonical("colour", tuple(idx), colour))
        else:
            out.append(_canonical("colour_multi", tuple(idx), colour))
    for position, idx in _by(instances, lambda x: x.position).items():
        if len(idx) == 1:
            out.append(_canonical("position", tuple(idx), position))
    out.extend(_extremes(instances))
    out.extend(_ranked(instances))
    plates = [i for i, x in enumerate(instances) if x.plate]
    if len(plates) == 1:
        out.append(_canonical("plate", tuple(plates), instances[plates[0]].plate))
    curved = [i for i, x in enumerate(instances) if x.curved]
    if len(curved) == 1 and len(instances) > 1:
        out.append(_canonical("curved", tuple(curved)))
    if len(instances) > 1:
        out.append(_canonical("all", tuple(range(len(instances)))))
    return out  # fmt: skip


def no_target_expressions(
    instances: Sequence[Instance], rng: np.random.Generator
) -> list[ReferringExpression]:
    """Expressions that match nothing: an absent colour, a word that is not in the image."""
    present = {x.colour for x in instances}
    absent = [c for c in COLOUR_NAMES if c not in present] if "" not in present else []
    out = []
    if absent:
        colour = absent[rng.integers(len(absent))]
        out.append(_canonical("none_colour", (), colour))
    words = {x.text.lower() for x in instances}
    for candidate in ("EXIT", "HOTEL", "PIZZA", "TAXI"):
        if candidate.lower() not in words:
            out.append(_canonical("none_content", (), candidate))
            break
    return out


def sample_expressions(
    instances: Sequence[Instance], rng: np.random.Generator, *, count: int = 3, p_no_target: float = 0.1
) -> list[ReferringExpression]:
    """Up to `count` distinct expressions: mostly real targets, a no-target one with p_no_target."""
    candidates = candidate_expressions(instances)
    picked: list[ReferringExpression] = []
    if candidates:
        order = rng.permutation(len(candidates))[:count]
        picked = [candidates[i] for i in sorted(order)]
    if rng.random() < p_no_target or not picked:
        negatives = no_target_expressions(instances, rng)
        if negatives:
            picked.append(negatives[rng.integers(len(negatives))])
    return picked


def target_mask(instance_masks: Sequence[np.ndarray], expression: ReferringExpression, shape) -> np.ndarray:
    """HxW bool union of the targeted instance masks (all False for a no-target expression)."""
    out = np.zeros(shape, bool)
    for i in expression.targets:
        out |= instance_masks[i]
    return out
