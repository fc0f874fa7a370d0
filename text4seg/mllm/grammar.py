"""The R-RLE answer grammar as a byte-level automaton (pure Python, no torch).

An answer is `sentence + "\\n<seg>" + block + "</seg>"` where the block has exactly H rows, each a
`|␠`-joined list of `label *N` runs whose counts sum to W, rows joined by `\\n␠`, ending with `\\n`
(../shared/REFERENCE.md §1). `RrleGrammar.step` advances a state by one byte or returns None when the
byte cannot continue any well-formed answer, so a decoder that only emits tokens whose bytes all
step can never write an unparseable answer. Runs are canonical: a run never repeats the label of the
run before it in the same row (the encoder would have merged them).

States are small hashable tuples (so masks can be cached per state):
- ("sentence",): free answer sentence, any byte but `\\n` and `<`; `\\n` starts the block;
- ("literal", remaining_bytes, next_state): fixed text to write (`<seg>`, `| `, row break, `</seg>`);
- ("label", rows_left, cols_left, previous_label, typed_bytes): inside `label *` of a run;
- ("count", rows_left, cols_left, label, typed_digits): inside the count of a run;
- ("done",): `</seg>` written; only end-of-sequence may follow.
Rows and columns count down, so states in different rows with the same budget share cached masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from text4seg.core.codec import BACKGROUND, SEG_CLOSE, SEG_OPEN, validate_label

SENTENCE = ("sentence",)
DONE = ("done",)
_DIGITS = frozenset(b"0123456789")
_SENTENCE_STOP = frozenset(b"\n<")  # "<" would let the sentence fake a <seg> tag


@dataclass(frozen=True, kw_only=True)
class GrammarConfig:
    """What a well-formed answer looks like."""

    height: int
    """Rows H of the descriptor grid."""
    width: int
    """Columns W; the run counts of every row sum to it."""
    labels: tuple[str, ...] = (BACKGROUND, "text")
    """Labels a run may use; the background label is always added."""
    sentence: str | None = None
    """If given, the answer sentence is this exact text; if None the model writes its own."""

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"grid {self.height}×{self.width} must have at least one row and column")
        labels = tuple(dict.fromkeys([BACKGROUND, *self.labels]))
        for label in labels:
            validate_label(label)
        object.__setattr__(self, "labels", labels)
        if self.sentence is not None and ("\n" in self.sentence or "<" in self.sentence):
            raise ValueError(f"sentence {self.sentence!r} may not contain a newline or '<'")


class RrleGrammar:
    """Byte automaton and shortest-completion oracle for one `GrammarConfig`."""

    def __init__(self, *, config: GrammarConfig) -> None:
        self.config = config
        self.height, self.width = config.height, config.width
        self._heads = {label: label.encode() + b" *" for label in config.labels}
        self._single_label = len(config.labels) == 1

    # --- automaton -------------------------------------------------------------------------

    def initial_state(self) -> tuple:
        if self.config.sentence is None:
            return SENTENCE
        return ("literal", (self.config.sentence + "\n" + SEG_OPEN).encode(), self._row_start(self.height))

    def _row_start(self, rows_left: int) -> tuple:
        return ("label", rows_left, self.width, None, b"")

    def step(self, state: tuple, byte: int) -> tuple | None:
        """The state after writing `byte` (0..255), or None if no well-formed answer continues so."""
        kind = state[0]
        if kind == "sentence":
            if byte == 0x0A:
                return ("literal", SEG_OPEN.encode(), self._row_start(self.height))
            return None if byte in _SENTENCE_STOP else state
        if kind == "literal":
            remaining, after = state[1], state[2]
            if byte != remaining[0]:
                return None
            return after if len(remaining) == 1 else ("literal", remaining[1:], after)
        if kind == "label":
            return self._step_label(state, byte)
        if kind == "count":
            return self._step_count(state, byte)
        return None  # done: nothing but end-of-sequence

    def _step_label(self, state: tuple, byte: int) -> tuple | None:
        _, rows_left, cols_left, previous, typed = state
        typed += bytes((byte,))
        alive = False
        for label, head in self._heads.items():
            if label == previous or not head.startswith(typed):
                continue
            if head == typed:
                return ("count", rows_left, cols_left, label, b"")
            alive = True
        return ("label", rows_left, cols_left, previous, typed) if alive else None

    def _step_count(self, state: tuple, byte: int) -> tuple | None:
        _, rows_left, cols_left, label, digits = state
        if byte in _DIGITS:
            digits += bytes((byte,))
            if digits[0] == 0x30 or int(digits) > cols_left:
                return None
            # With a single label the run cannot be followed by another: it must fill the row.
            if self._single_label and not str(cols_left).encode().startswith(digits):
                return None
            return ("count", rows_left, cols_left, label, digits)
        if not digits:
            return None
        used = int(digits)
        if byte == ord("|") and used < cols_left and not self._single_label:
            return ("literal", b" ", ("label", rows_left, cols_left - used, label, b""))
        if byte == 0x0A and used == cols_left:
            if rows_left == 1:
                return ("literal", SEG_CLOSE.encode(), DONE)
            return ("literal", b" ", self._row_start(rows_left - 1))
        return None

    def feed(self, state: tuple, data: bytes) -> tuple | None:
        """Step through every byte of `data`; None as soon as one is refused."""
        for byte in data:
            state = self.step(state, byte)
            if state is None:
                return None
        return state

    # --- shortest completion (bytes: a completion may start inside a multi-byte character) ------

    def completion_parts(self, state: tuple) -> tuple[bytes, int]:
        """The shortest way to `done` from `state`, as (head, n): `head` closes the current run and row
        with one run; then n all-background rows follow (`background_rows(n)`), ending with `</seg>`."""
        kind = state[0]
        if kind == "sentence":
            return b"\n" + SEG_OPEN.encode(), self.height
        if kind == "literal":
            head, rows = self.completion_parts(state[2])
            return state[1] + head, rows
        if kind == "label":
            _, rows_left, cols_left, previous, typed = state
            label = next(
                name for name, head in self._heads.items() if name != previous and head.startswith(typed)
            )
            return self._heads[label][len(typed) :] + str(cols_left).encode() + self._row_end(
                rows_left
            ), rows_left - 1
        if kind == "count":
            _, rows_left, cols_left, label, digits = state
            target = str(cols_left).encode()
            if target.startswith(digits):
                return target[len(digits) :] + self._row_end(rows_left), rows_left - 1
            other = next(name for name in self.config.labels if name != label)
            head = f"| {other} *{cols_left - int(digits)}".encode() + self._row_end(rows_left)
            return head, rows_left - 1
        return b"", 0

    def _row_end(self, rows_left: int) -> bytes:
        return ("\n" + SEG_CLOSE).encode() if rows_left == 1 else b"\n "

    def background_rows(self, rows: int) -> bytes:
        """`rows` all-background rows closing the block (empty for 0)."""
        if rows == 0:
            return b""
        row = f"{BACKGROUND} *{self.width}"
        return ("\n ".join([row] * rows) + "\n" + SEG_CLOSE).encode()

    def completion(self, state: tuple) -> bytes:
        """Bytes that take `state` to `done` (see `completion_parts`)."""
        head, rows = self.completion_parts(state)
        return head + self.background_rows(rows)

    def is_complete(self, state: tuple) -> bool:
        return state == DONE

    def rows_to_write(self, state: tuple) -> int:
        """Descriptor rows not yet finished (the current one included): H before the block, 0 when done."""
        while state[0] == "literal":
            state = state[2]
        if state[0] in ("label", "count"):
            return state[1]
        return self.height if state == SENTENCE else 0


def accepts(grammar: RrleGrammar, text: str) -> bool:
    """Whether `text` is a complete well-formed answer under `grammar`."""
    state = grammar.feed(grammar.initial_state(), text.encode())
    return state is not None and grammar.is_complete(state)


def mask_key(state: tuple, *, row_horizon: int) -> tuple:
    """The part of a state that decides which tokens may follow.

    Rows left only matter once a token could reach the last row's end, so they are clipped to
    `row_horizon` (more than the row ends one token can cross): far-from-the-end states in different
    rows then share one cached mask.
    """
    if state[0] in ("label", "count"):
        return (state[0], min(state[1], row_horizon), *state[2:])
    if state[0] == "literal":
        return ("literal", state[1], mask_key(state[2], row_horizon=row_horizon))
    return state


def grammar_for(height: int, width: int, labels: Sequence[str], sentence: str | None = None) -> RrleGrammar:
    """Shorthand: `RrleGrammar(config=GrammarConfig(...))`."""
    return RrleGrammar(
        config=GrammarConfig(height=height, width=width, labels=tuple(labels), sentence=sentence)
    )
