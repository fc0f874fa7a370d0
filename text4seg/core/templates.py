"""Chat phrasing for descriptor tasks, shared by training-data building and inference.

A `TemplateSet` is a frozen pool of questions and answer sentences per task. The registry maps a
config string to a set; callers pass the set they use explicitly, so the conversation builder and
the MLLM at inference time phrase queries identically and nothing is reassigned at run time.
Questions and answers contain one `{target}` slot: the query text ("text", a referring sentence,
or `|`-joined class names). The "describe" task answers in prose, so it has no answer sentences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

TASKS = ("scene_text", "referring", "semantic", "describe")
SEGMENTATION_TASKS = ("scene_text", "referring", "semantic")
IMAGE_TOKEN = "<image>"


@dataclass(frozen=True, kw_only=True)
class TemplateSet:
    """Question and answer phrasings for every task.

    Attributes:
        name: registry key.
        questions: task -> non-empty tuple of question templates, each with one "{target}" slot
            (the describe questions may omit it).
        answers: segmentation task -> non-empty tuple of answer sentences with one "{target}" slot;
            the sentence precedes "\\n<seg>...</seg>" (text4seg.core.codec.format_answer).
    """

    name: str
    questions: Mapping[str, tuple[str, ...]]
    answers: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        missing = [t for t in TASKS if not self.questions.get(t)]
        missing += [f"answer:{t}" for t in SEGMENTATION_TASKS if not self.answers.get(t)]
        if missing:
            raise ValueError(f"template set {self.name!r} has no phrasings for {missing}")
        for task in SEGMENTATION_TASKS:
            for text in (*self.questions[task], *self.answers[task]):
                if text.count("{target}") != 1:
                    raise ValueError(
                        f"template set {self.name!r}, {task}: {text!r} needs exactly one {{target}}"
                    )
        # Read-only views so a shared set cannot be edited by one caller behind another's back.
        object.__setattr__(self, "questions", MappingProxyType(dict(self.questions)))
        object.__setattr__(self, "answers", MappingProxyType(dict(self.answers)))

    def question(self, task: str, target: str, *, index: int = 0) -> str:
        """Question `index` (modulo the pool size) for `task`, with the image token first.

        Returns "<image>\\n" + the filled question: the user turn exactly as trained on.
        """
        pool = self._pool(self.questions, task)
        return f"{IMAGE_TOKEN}\n" + pool[index % len(pool)].replace("{target}", target)

    def answer_sentence(self, task: str, target: str, *, index: int = 0) -> str:
        """Answer sentence `index` (modulo the pool size) for a segmentation task."""
        pool = self._pool(self.answers, task)
        return pool[index % len(pool)].replace("{target}", target)

    def sample_indices(self, task: str, rng: np.random.Generator) -> tuple[int, int]:
        """Random (question index, answer index) for training-time variety."""
        q = int(rng.integers(len(self._pool(self.questions, task))))
        a = int(rng.integers(len(self.answers[task]))) if task in self.answers else 0
        return q, a

    @staticmethod
    def _pool(pools: Mapping[str, tuple[str, ...]], task: str) -> tuple[str, ...]:
        if task not in pools:
            raise ValueError(f"task {task!r} has no templates; tasks: {sorted(pools)}")
        return pools[task]


_SEG_ANSWERS = (
    "Sure, here is the segmentation mask for '{target}':",
    "Here is the mask for '{target}':",
    "Certainly. The segmentation of '{target}' is:",
    "This is where '{target}' is:",
)

DEFAULT = TemplateSet(
    name="default",
    questions={
        "scene_text": (
            "Segment the {target} in this image.",
            "Please segment all the {target} in the image.",
            "Can you segment the {target} in this picture?",
            "Where is the {target} in this image? Answer with a segmentation mask.",
            "Mark every pixel of {target} in the image.",
            "Give me a mask of the {target} shown here.",
        ),
        "referring": (
            "Please segment {target} in this image.",
            "Can you segment {target}?",
            "Segment {target}.",
            "Where is {target}? Please answer with a segmentation mask.",
            "Show me {target} with a mask.",
        ),
        "semantic": (
            "Segment these classes in the image: {target}.",
            "Please give a semantic segmentation of the image with the classes {target}.",
            "Can you label {target} in this image?",
        ),
        "describe": (
            "Describe the appearance of the text in this image.",
            "What does the text in this image look like?",
            "Describe the text's colour, size, position and style.",
            "List the words in this image and describe how each one looks.",
        ),
    },
    answers={"scene_text": _SEG_ANSWERS, "referring": _SEG_ANSWERS, "semantic": _SEG_ANSWERS},
)

# One fixed phrasing per task: for evaluation runs that must not depend on template sampling.
FIXED = TemplateSet(
    name="fixed",
    questions={task: (pool[0],) for task, pool in DEFAULT.questions.items()},
    answers={task: (pool[0],) for task, pool in DEFAULT.answers.items()},
)

TEMPLATE_SETS: Mapping[str, TemplateSet] = MappingProxyType({t.name: t for t in (DEFAULT, FIXED)})


def get_template_set(name: str) -> TemplateSet:
    """The registered set called `name` (a config string)."""
    if name not in TEMPLATE_SETS:
        raise ValueError(f"template set {name!r} not in {sorted(TEMPLATE_SETS)}")
    return TEMPLATE_SETS[name]


def build_inputs(processor, image, question: str):
    """Processor inputs (tensors) for one user turn; `question` is "<image>\\n..." as in training data.

    The image part is passed structurally so each checkpoint's chat template writes its own image
    placeholder (LLaVA `<image>`, Qwen2-VL vision tokens); for the LLaVA template the text is identical.
    Generation, the pipeline's describe call and teacher-forced confidence all build their prompt here.
    """
    text = question.removeprefix(f"{IMAGE_TOKEN}\n")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # Images are H×W×C (arrays or PIL); said outright, since transformers guesses from the shape and
    # takes a 1×1 or 3×W image for channels-first (a warning, and wrong pixel values for 3×W).
    return processor(images=image, text=prompt, return_tensors="pt", input_data_format="channels_last")
