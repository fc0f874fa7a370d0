"""A byte-level BPE tokenizer trained here, on the project's own corpus, so R-RLE answers are short.

The pre-tokenizer isolates the R-RLE punctuation (` *`, `| `, the row break `\\n `) and whole counts
before byte-level BPE runs, so with enough merges each of them, and the labels `others` / `text`,
is one token: a 16×16 all-background answer is then 4 tokens per row instead of ~10.
The corpus is generated in code from a fixed seed, so the vocabulary is the same on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BACKGROUND = "others"
SPECIAL_TOKENS = ("<pad>", "<|im_start|>", "<|im_end|>", "<image>")
"""pad, turn start, turn end (= eos), image placeholder; ids 0..3 in this order."""

SINGLE_TOKEN_PIECES = ("others", "text", " *", "| ", "\n ", "<seg>", "</seg>")
"""Strings that must encode to exactly one token (checked after training)."""

# Isolating these pieces is what lets BPE turn each into a single token: the default GPT-2 regex
# would glue the space of "| " and "\n " onto the following label instead.
_PRETOKEN_PATTERN = r"</?seg>|\| |\n | \*|\d+| ?[^\s\d|*<]+|<|\s+"

# Jinja chat template (ChatML-like). {% generation %} marks the assistant text so that
# `apply_chat_template(..., return_assistant_tokens_mask=True)` can build assistant-only labels.
# IMAGE_SLOT is replaced by the architecture's image placeholder (one per image part).
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{% else %}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{{ '<|im_end|>' }}{% endgeneration %}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ 'IMAGE_SLOT' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '<|im_end|>' }}"
    "{% endif %}"
    "{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def chat_template(image_placeholder: str = "<image>\n") -> str:
    """The Jinja chat template with `image_placeholder` written where each image part goes."""
    return _CHAT_TEMPLATE.replace("IMAGE_SLOT", image_placeholder.replace("\n", "\\n"))


_QUERY_LABELS = (
    "text",
    "word",
    "words",
    "letters",
    "sign",
    "title",
    "logo",
    "caption",
    "dog",
    "car",
    "person",
)
_QUESTIONS = (
    "Please segment only the {label} in the image.",
    "Can you segment the {label} in the image?",
    "Where is the {label}? Answer with a segmentation mask.",
    "Segment the {label} in this picture.",
    "Could you provide the segmentation mask of the {label}?",
    "Show me a mask of all the {label} in the image.",
)
_ANSWERS = (
    "Sure, here is the segmentation mask for '{label}':",
    "Here is the mask of '{label}':",
    "The segmentation of '{label}' is:",
)


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """How the tiny BPE tokenizer is trained."""

    vocab_size: int = 640
    """Final vocabulary size including the 256 byte symbols and the special tokens."""
    max_count: int = 64
    """Largest run count that must be a single token (the widest grid the model answers for)."""
    num_answers: int = 600
    """Random R-RLE answers in the training corpus."""
    seed: int = 0
    """Seed of the corpus generator."""

    def __post_init__(self) -> None:
        minimum = 256 + len(SPECIAL_TOKENS) + self.max_count
        if self.vocab_size < minimum:
            raise ValueError(f"vocab_size {self.vocab_size} < {minimum} (bytes + specials + counts)")
        if self.max_count < 1:
            raise ValueError(f"max_count {self.max_count} must be >= 1")
        if self.num_answers < 1:
            raise ValueError(f"num_answers {self.num_answers} must be >= 1")


def _random_row(rng: random.Random, width: int, labels: tuple[str, ...]) -> str:
    runs, used, previous = [], 0, None
    while used < width:
        count = rng.randint(1, width - used)
        label = rng.choice([name for name in labels if name != previous])
        runs.append(f"{label} *{count}")
        used, previous = used + count, label
    return "| ".join(runs)


def training_corpus(config: TokenizerConfig) -> list[str]:
    """Deterministic corpus: chat phrasings, random R-RLE answers, and every count up to max_count."""
    rng = random.Random(config.seed)
    corpus: list[str] = []
    for label in _QUERY_LABELS:
        corpus += [q.format(label=label) for q in _QUESTIONS] + [a.format(label=label) for a in _ANSWERS]
    widths = sorted({8, 16, 24, 32, config.max_count})
    for _ in range(config.num_answers):
        width = rng.choice(widths)
        label = rng.choice(_QUERY_LABELS)
        rows = [_random_row(rng, width, (BACKGROUND, label)) for _ in range(rng.randint(2, 6))]
        answer = rng.choice(_ANSWERS).format(label=label)
        corpus.append(answer + "\n<seg>" + "\n ".join(rows) + "\n</seg>")
    # Counts of whole rows are the most frequent runs in real answers; make each one common enough
    # that BPE merges it into one token.
    corpus += [f"{BACKGROUND} *{n}\n text *{n}| " for n in range(1, config.max_count + 1) for _ in range(8)]
    return corpus


def train_tokenizer(
    config: TokenizerConfig | None = None,
    *,
    extra_special_tokens: dict[str, str] | None = None,
    image_placeholder: str = "<image>\n",
):
    """Train the BPE and wrap it as a `PreTrainedTokenizerFast` with pad/eos/image tokens and a chat template.

    `extra_special_tokens` (attribute name -> token) adds architecture-specific markers, e.g. Qwen2-VL's
    vision start/end tokens; `image_placeholder` is what the chat template writes for an image.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    config = config or TokenizerConfig()
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(training_corpus(config), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token=None,
        extra_special_tokens={"image_token": "<image>", **(extra_special_tokens or {})},
        model_max_length=4096,
        padding_side="left",
    )
    tokenizer.chat_template = chat_template(image_placeholder)
    _check_single_tokens(tokenizer, config.max_count)
    return tokenizer


def _check_single_tokens(tokenizer, max_count: int) -> None:
    pieces = list(SINGLE_TOKEN_PIECES) + [str(n) for n in range(1, max_count + 1)]
    split = {p: tokenizer.tokenize(p) for p in pieces}
    broken = {p: toks for p, toks in split.items() if len(toks) != 1}
    if broken:
        raise ValueError(f"{len(broken)} pieces are not single tokens: {broken}; raise vocab_size")
