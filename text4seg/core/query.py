"""Reading a user's free-form query as one of the trained tasks.

Training conversations ask with templates ("Segment the {target} in this image.", "Please segment
{target} in this image."), so at inference a query is reduced to its target and re-asked with the
same templates: "segment the text in this image" → scene text; "the red word" → a referring
expression; "person|car" → semantic classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from text4seg.core.codec import clean_label

QUERY_TASKS = ("scene_text", "referring", "semantic")
SCENE_TEXT_TARGET = "text"
# Phrases that mean "all the text": the scene-text task rather than a referring expression.
_SCENE_TEXT_PHRASES = {
    "text",
    "texts",
    "the text",
    "all text",
    "all the text",
    "scene text",
    "words",
    "the words",
}
_LEADING = re.compile(
    r"^\s*(?:please\s+|can you\s+|could you\s+)*(?:segment|mark|find|show me|give me a mask of|mask)\s+",
    re.IGNORECASE,
)
_TRAILING = re.compile(
    r"(?:\s+(?:in|on)\s+(?:this|the)\s+(?:image|picture|photo))?\s*(?:with a mask)?\s*[.?!]*\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Query:
    """A query as the MLLM is asked it."""

    task: str
    """scene_text, referring or semantic."""
    target: str
    """What fills the question template's {target} slot."""
    labels: tuple[str, ...]
    """Foreground labels the answer may use (background excluded)."""


def strip_query(query: str) -> str:
    """The target phrase of a query: leading "segment"/"please segment" and a trailing
    "in this image." removed, the rest (articles included) kept as written."""
    core = _TRAILING.sub("", _LEADING.sub("", query, count=1), count=1).strip()
    return core or query.strip()


def interpret_query(query: str, *, task: str | None = None, referring_label: str = "sentence") -> Query:
    """Read ``query`` as a task and target. ``task`` forces the task instead of guessing it.

    A "|" makes a semantic query; "the text"/"all the text" (after stripping "segment … in this
    image") is scene text; anything else is a referring expression. Referring answers are labelled
    with the expression itself, or with "text" when ``referring_label == "target"``.
    """
    if not query or not query.strip():
        raise ValueError("query is empty")
    if task is not None and task not in QUERY_TASKS:
        raise ValueError(f"task {task!r} not in {QUERY_TASKS}")
    if task == "semantic" or (task is None and "|" in query):
        names = [clean_label(strip_query(part)) for part in query.split("|") if part.strip()]
        return Query(task="semantic", target="|".join(names), labels=tuple(dict.fromkeys(names)))
    core = strip_query(query)
    if task == "scene_text" or (task is None and core.lower() in _SCENE_TEXT_PHRASES):
        return Query(task="scene_text", target=SCENE_TEXT_TARGET, labels=(SCENE_TEXT_TARGET,))
    label = clean_label(core) if referring_label == "sentence" else SCENE_TEXT_TARGET
    return Query(task="referring", target=core, labels=(label,))
