"""Grammar-constrained decoding: a transformers `LogitsProcessor` that only lets R-RLE answers through.

Every generated token's bytes are fed to the `RrleGrammar` automaton; at each step the logits of
tokens that could not continue a well-formed answer are set to -inf. Allowed-token masks are cached
per grammar state (rows and columns count down, so most states recur), which keeps the per-token cost
to a dictionary lookup and one tensor add. When the token budget gets tight the processor forces the
shortest completion, so even an untrained model ends with `</seg>` and eos within `max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import LogitsProcessor

from text4seg.mllm.grammar import DONE, SENTENCE, GrammarConfig, RrleGrammar, mask_key

_BYTE_TOKEN_PREFIX = "<0x"
SENTENCE_END = ("sentence_end",)
"""Pseudo-state: the free sentence has reached its token limit, the next token must begin the block."""


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, inverted (character → byte).

    Bytes that are printable Latin-1 (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves; the other 68
    are shifted, in order, to U+0100 onwards.
    """
    kept = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    shifted = [b for b in range(256) if b not in kept]
    mapping = {chr(b): b for b in kept}
    mapping.update({chr(256 + i): b for i, b in enumerate(shifted)})
    return mapping


class TokenTable:
    """The byte string each token id writes, in a trie for fast grammar-guided traversal.

    Works for byte-level BPE (GPT-2 / Qwen style) and SentencePiece (`▁` spaces, `<0xNN>` byte
    fallback) vocabularies. Special tokens get no bytes: they are never allowed inside an answer.
    """

    def __init__(self, *, tokenizer) -> None:
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        self.size = max(vocab.values()) + 1
        special = set(tokenizer.all_special_ids)
        byte_level = _is_byte_level(tokenizer)
        decoder = _byte_level_decoder() if byte_level else None
        self.token_bytes: list[bytes | None] = [None] * self.size
        added = {token.content for token in tokenizer.added_tokens_decoder.values()}
        for token, index in vocab.items():
            if index in special:
                continue
            if token in added:
                self.token_bytes[index] = token.encode()
            elif byte_level:
                self.token_bytes[index] = (
                    bytes(decoder[c] for c in token) if all(c in decoder for c in token) else None
                )
            else:
                self.token_bytes[index] = _sentencepiece_bytes(token)
        self.trie = _build_trie(self.token_bytes)
        self.max_token_bytes = max((len(b) for b in self.token_bytes if b), default=1)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def encode_bytes(self, data: bytes) -> list[int]:
        """Token ids writing exactly `data`, which may start inside a multi-byte character."""
        for cut in range(min(4, len(data) + 1)):
            try:
                rest = data[cut:].decode()
            except UnicodeDecodeError:
                continue
            return self._byte_tokens(data[:cut]) + (self.encode(rest) if rest else [])
        raise ValueError(f"{data[:8]!r}... is not UTF-8 after its first 3 bytes")

    def _byte_tokens(self, data: bytes) -> list[int]:
        """Greedy longest-match of raw bytes against the vocabulary (for a partial character)."""
        ids, position = [], 0
        while position < len(data):
            node, best = self.trie, None
            for end in range(position, len(data)):
                node = node.get(data[end])
                if node is None:
                    break
                if None in node:
                    best = (end + 1, node[None][0])
            if best is None:
                raise ValueError(f"no token writes byte {data[position]:#04x}")
            position, token = best
            ids.append(token)
        return ids


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in backend.decoder.__getstate__().decode(errors="ignore")


def _sentencepiece_bytes(token: str) -> bytes:
    if token.startswith(_BYTE_TOKEN_PREFIX) and token.endswith(">") and len(token) == 6:
        return bytes([int(token[3:5], 16)])
    return token.replace("\u2581", " ").encode()


def _build_trie(token_bytes: list[bytes | None]) -> dict:
    """Nested dicts: byte → child node; key None holds the ids whose bytes end at that node."""
    root: dict = {}
    for index, data in enumerate(token_bytes):
        if not data:
            continue
        node = root
        for byte in data:
            node = node.setdefault(byte, {})
        node.setdefault(None, []).append(index)
    return root


class GrammarMasks:
    """Allowed-token masks of one grammar over one vocabulary, cached per state (reusable across calls)."""

    def __init__(self, *, grammar: RrleGrammar, table: TokenTable, eos_ids: list[int]) -> None:
        self.grammar, self.table = grammar, table
        self.eos_ids = sorted(set(eos_ids))
        if not self.eos_ids:
            raise ValueError("constrained decoding needs at least one end-of-sequence id")
        # One token crosses at most max_bytes / 5 row ends ("x *1\n" is the shortest row).
        self.row_horizon = 2 + table.max_token_bytes // 5
        self._allowed: dict[tuple, list[int]] = {}
        self._biases: dict[tuple, Any] = {}
        self._completions: dict[tuple, list[int]] = {}
        widest = max(grammar.config.labels, key=len)
        self.slack = 2 * len(table.encode(f"| {widest} *{grammar.width}\n ")) + 4
        # Tokens of one all-background row and of the block's end, for a cheap completion-length bound.
        self._row_tokens = len(table.encode_bytes(grammar.background_rows(2))) - len(
            table.encode_bytes(grammar.background_rows(1))
        )
        self._close_tokens = len(table.encode_bytes(grammar.background_rows(1))) + 1

    def allowed(self, state: tuple) -> list[int]:
        """Token ids whose bytes keep `state` on a well-formed answer (eos only when done)."""
        key = mask_key(state, row_horizon=self.row_horizon)
        if key not in self._allowed:
            if state == DONE:
                ids = list(self.eos_ids)
            elif state == SENTENCE_END:  # the sentence ran long: only tokens that start the block
                ids = [i for i in self.allowed(SENTENCE) if self.table.token_bytes[i].startswith(b"\n")]
            else:
                ids = sorted(self._walk(self.table.trie, state))
            if not ids:
                raise RuntimeError(f"no token of the vocabulary continues grammar state {state!r}")
            self._allowed[key] = ids
        return self._allowed[key]

    def _walk(self, node: dict, state: tuple) -> list[int]:
        found: list[int] = []
        step = self.grammar.step
        stack = [(node, state)]
        while stack:
            current, current_state = stack.pop()
            for byte, child in current.items():
                if byte is None:
                    continue
                following = step(current_state, byte)
                if following is None:
                    continue
                found.extend(child.get(None, ()))
                stack.append((child, following))
        return found

    def bias(self, state: tuple, vocab_size: int, device, dtype):
        """0 for allowed ids, -inf elsewhere: a `vocab_size` tensor added to the scores."""
        import torch

        key = (mask_key(state, row_horizon=self.row_horizon), vocab_size, str(device), dtype)
        if key not in self._biases:
            bias = torch.full((vocab_size,), float("-inf"), dtype=dtype, device=device)
            bias[torch.tensor(self.allowed(state), device=device)] = 0.0
            self._biases[key] = bias
        return self._biases[key]

    def completion_ids(self, state: tuple) -> list[int]:
        """Token ids of the shortest completion from `state`, ending with eos."""
        if state not in self._completions:
            self._completions[state] = self.table.encode_bytes(self.grammar.completion(state)) + [
                self.eos_ids[0]
            ]
        return self._completions[state]

    def completion_bound(self, state: tuple) -> int:
        """About how many tokens the shortest completion takes, without tokenizing it (head bytes bound
        the head's tokens; background rows cost what one costs). Only a trigger: the exact count follows."""
        head, rows = self.grammar.completion_parts(state)
        return len(head) + rows * self._row_tokens + self._close_tokens

    def advance(self, state: tuple, token: int) -> tuple:
        """State after emitting `token`; eos / pad after `done` keep it done."""
        if state == DONE:
            return DONE
        data = self.table.token_bytes[token] if token < self.table.size else None
        following = None if data is None else self.grammar.feed(state, data)
        if following is None:
            raise RuntimeError(f"token {token} ({data!r}) is not allowed in grammar state {state!r}")
        return following


class RrleLogitsProcessor(LogitsProcessor):
    """Masks logits so that generation writes exactly one well-formed answer, then eos.

    Use one instance per `generate` call (it records the prompt length on its first call). Rows are
    tracked by their generated prefix, so batches, sampling and beam reordering are all handled.
    `max_new_tokens` must equal the value given to `generate`: near the end of that budget the
    shortest completion is forced. `max_sentence_tokens` bounds a free answer sentence.
    """

    def __init__(self, *, masks: GrammarMasks, max_new_tokens: int, max_sentence_tokens: int = 32) -> None:
        self.masks = masks
        self.max_new_tokens = max_new_tokens
        self.max_sentence_tokens = max_sentence_tokens
        needed = len(masks.completion_ids(masks.grammar.initial_state())) + masks.slack
        if max_new_tokens < needed:
            raise ValueError(
                f"max_new_tokens {max_new_tokens} < {needed}, the shortest answer for a "
                f"{masks.grammar.height}×{masks.grammar.width} grid plus slack"
            )
        self._prompt_length: int | None = None
        self._states: dict[tuple, tuple] = {}
        self._forced: dict[tuple, int] = {}
        self.forced_tokens = 0
        """How many tokens were forced by the budget rule (diagnostics)."""

    def __call__(self, input_ids, scores):
        import torch

        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
        generated = input_ids[:, self._prompt_length :].tolist()
        states, biases = {}, []
        for row in generated:
            prefix = tuple(row)
            state = self._state_of(prefix)
            states[prefix] = state
            biases.append(self._row_bias(state, len(row), scores))
        self._states = states
        if len(biases) == 1:  # the common case; stacking costs more than the grammar itself
            return scores + biases[0]
        return scores + torch.stack(biases)

    def _state_of(self, prefix: tuple) -> tuple:
        if not prefix:
            return self.masks.grammar.initial_state()
        previous = self._states.get(prefix[:-1])
        if previous is None:  # not seen last step (e.g. a new beam): replay from the start
            previous = self._state_of(prefix[:-1])
        return self.masks.advance(previous, prefix[-1])

    def _row_bias(self, state: tuple, written: int, scores):
        remaining = self.max_new_tokens - written
        token = self._forced_token(state, remaining)
        if token is None and state == SENTENCE and written >= self.max_sentence_tokens:
            return self.masks.bias(SENTENCE_END, scores.shape[-1], scores.device, scores.dtype)
        if token is None:
            return self.masks.bias(state, scores.shape[-1], scores.device, scores.dtype)
        import torch

        bias = torch.full((scores.shape[-1],), float("-inf"), dtype=scores.dtype, device=scores.device)
        bias[token] = 0.0
        return bias

    def _forced_token(self, state: tuple, remaining: int) -> int | None:
        """The next token of the shortest completion once the budget can only just fit it."""
        if state in self._forced:
            return self._forced[state]
        if state == DONE:
            return None
        if remaining > self.masks.completion_bound(state) + self.masks.slack:
            return None
        ids = self.masks.completion_ids(state)
        if remaining > len(ids) + self.masks.slack:
            return None
        # Commit to the whole completion: record the state before each of its tokens.
        current = state
        for token in ids:
            self._forced[current] = token
            self.forced_tokens += 1
            current = self.masks.advance(current, token)
        return self._forced[state]


def masks_for(
    tokenizer, *, height: int, width: int, labels: Sequence[str], sentence: str | None = None
) -> GrammarMasks:
    """Grammar masks for a `height`×`width` answer over `labels` (+ background) with `tokenizer`."""
    grammar = RrleGrammar(
        config=GrammarConfig(height=height, width=width, labels=tuple(labels), sentence=sentence)
    )
    return GrammarMasks(
        grammar=grammar, table=TokenTable(tokenizer=tokenizer), eos_ids=[tokenizer.eos_token_id]
    )
