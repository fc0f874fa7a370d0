"""Referring expressions built from instance attributes, with the instances each one picks.

Every expression is checked against the whole scene before it is emitted: "the red word" is only
said when exactly one instance is red; with two red words it becomes "the red words" (several
targets); a colour that no instance has gives a no-target expression (gRefCOCO's generalized cases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data_builders.synthetic.colours import NAMES as COLOUR_NAMES
from data_builders.synthetic.scene import Instance

KINDS = ("content", "colour", "colour_multi", "position", "largest", "smallest", "plate", "curved", "all")
KINDS += ("none_colour", "none_content")
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

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "targets": list(self.targets), "kind": self.kind}


def _by(instances: Sequence[Instance], key) -> dict:
    groups: dict = {}
    for i, inst in enumerate(instances):
        groups.setdefault(key(inst), []).append(i)
    return groups


def _position_phrase(position: str) -> str:
    return "in the center" if position == "center" else f"at the {position}"


def _ranked(instances: Sequence[Instance]) -> list[ReferringExpression]:
    if len(instances) < 2:
        return []
    order = sorted(range(len(instances)), key=lambda i: instances[i].area)
    areas = [instances[i].area for i in order]
    out = []
    if areas[-1] >= _AREA_MARGIN * areas[-2]:
        out.append(ReferringExpression(sentence="the largest word", targets=(order[-1],), kind="largest"))
    if areas[1] >= _AREA_MARGIN * areas[0]:
        out.append(ReferringExpression(sentence="the smallest word", targets=(order[0],), kind="smallest"))
    return out


def candidate_expressions(instances: Sequence[Instance]) -> list[ReferringExpression]:
    """Every unambiguous expression for these instances (deterministic order)."""
    out: list[ReferringExpression] = []
    for idx in _by(instances, lambda x: x.text.lower()).values():
        if len(idx) == 1:
            out.append(
                ReferringExpression(
                    sentence=f"the word '{instances[idx[0]].text}'", targets=tuple(idx), kind="content"
                )
            )
    for colour, idx in _by(instances, lambda x: x.colour).items():
        if len(idx) == 1:
            out.append(ReferringExpression(sentence=f"the {colour} word", targets=tuple(idx), kind="colour"))
        else:
            out.append(
                ReferringExpression(sentence=f"the {colour} words", targets=tuple(idx), kind="colour_multi")
            )
    for position, idx in _by(instances, lambda x: x.position).items():
        if len(idx) == 1:
            sentence = f"the text {_position_phrase(position)}"
            out.append(ReferringExpression(sentence=sentence, targets=tuple(idx), kind="position"))
    out.extend(_ranked(instances))
    plates = [i for i, x in enumerate(instances) if x.plate]
    if len(plates) == 1:
        sentence = f"the text on the {instances[plates[0]].plate} sign"
        out.append(ReferringExpression(sentence=sentence, targets=tuple(plates), kind="plate"))
    curved = [i for i, x in enumerate(instances) if x.curved]
    if len(curved) == 1 and len(instances) > 1:
        out.append(ReferringExpression(sentence="the curved text", targets=tuple(curved), kind="curved"))
    if len(instances) > 1:
        out.append(
            ReferringExpression(sentence="all the text", targets=tuple(range(len(instances))), kind="all")
        )
    return out  # fmt: skip


def no_target_expressions(
    instances: Sequence[Instance], rng: np.random.Generator
) -> list[ReferringExpression]:
    """Expressions that match nothing: an absent colour, a word that is not in the image."""
    present = {x.colour for x in instances}
    absent = [c for c in COLOUR_NAMES if c not in present]
    out = []
    if absent:
        colour = absent[rng.integers(len(absent))]
        out.append(ReferringExpression(sentence=f"the {colour} word", targets=(), kind="none_colour"))
    words = {x.text.lower() for x in instances}
    for candidate in ("EXIT", "HOTEL", "PIZZA", "TAXI"):
        if candidate.lower() not in words:
            out.append(
                ReferringExpression(sentence=f"the word '{candidate}'", targets=(), kind="none_content")
            )
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
