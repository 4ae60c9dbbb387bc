"""The voice's lexicon: a trie of the corpus's words, and the rule that keeps the voice to them.

The voice writes one character at a time, and a character model left to itself invents
words ("flowly", "cinging"). The lexicon makes the project's promise literal: **the voice
cannot write a word the artist did not give it.** While a phrase is written, a
:class:`WordState` follows the trie:

* inside a word, a character may only continue a prefix of a corpus word;
* a separator (a space, punctuation) or the phrase's end may only come where a corpus word
  ends; after punctuation only a space or the end ("still, here", "there?"), after a space
  only a new word;
* a phrase never ends before its first word, nor starts with a separator.

A *word* is a run of :data:`WORD_CHARS` (letters, digits, the apostrophe); everything else
the voice can write is a separator.

Stored in the voice bundle as the ``lexicon`` section (:mod:`lanthorn.device.engine.bundle`), in the
compact pre-order form :func:`encode` writes (a byte per trie edge plus one per node: a few KB
for a few hundred words)::

    node := edge* 0x00                 the node's children, in byte order, then the end mark
    edge := byte (c | 0x80 if a word ends at the child) node

``c`` is a printable ASCII word character (0x21..0x7e), so the high bit is free for the
"a word ends here" flag and 0x00 cannot be mistaken for an edge. :func:`decode` refuses
anything else. Standard library and numpy only (the device rule).
"""
from __future__ import annotations

import re

import numpy as np

FORMAT = "lanthorn-trie"
VERSION = 1
#: the characters words are made of; every other character is a separator
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'")
_WORD = re.compile(r"[A-Za-z0-9']+")
MAX_WORDS = 65536
MAX_WORD_LEN = 64


class LexiconError(ValueError):
    """Trie bytes that do not decode (a damaged or hand-made bundle section)."""


def words_of(text: str) -> list[str]:
    """The words of ``text``, in order ("still here, still" -> still, here, still)."""
    return _WORD.findall(text)


class Trie:
    """A set of words as a trie: ``children[n]`` maps a character to a node, ``ends[n]``
    says a word ends at node ``n``; node 0 is the root (the empty prefix)."""

    def __init__(self, words=()):
        self.children: list[dict[str, int]] = [{}]
        self.ends: list[bool] = [False]
        for w in words:
            self.add(w)

    def add(self, word: str) -> None:
        if not word or len(word) > MAX_WORD_LEN or any(c not in WORD_CHARS for c in word):
            raise LexiconError(f"not a word the lexicon can hold: {word[:80]!r} (1-{MAX_WORD_LEN} "
                               f"letters, digits or apostrophes)")
        node = 0
        for c in word:
            nxt = self.children[node].get(c)
            if nxt is None:
                nxt = len(self.ends)
                self.children[node][c] = nxt
                self.children.append({})
                self.ends.append(False)
            node = nxt
        self.ends[node] = True

    def words(self) -> list[str]:
        """Every word, sorted."""
        out, stack = [], [(0, "")]
        while stack:
            node, prefix = stack.pop()
            if self.ends[node]:
                out.append(prefix)
            stack += [(n, prefix + c) for c, n in self.children[node].items()]
        return sorted(out)

    def __contains__(self, word: str) -> bool:
        node = 0
        for c in word:
            node = self.children[node].get(c, -1)
            if node < 0:
                return False
        return self.ends[node]

    def __len__(self) -> int:
        return sum(self.ends)


def encode(trie: Trie) -> bytes:
    """The trie in the pre-order form above (deterministic: children in byte order)."""
    out = bytearray()

    def node(n: int) -> None:   # recursion depth is bounded by MAX_WORD_LEN
        for c, child in sorted(trie.children[n].items()):
            out.append(ord(c) | (0x80 if trie.ends[child] else 0))
            node(child)
        out.append(0)

    node(0)
    return bytes(out)


def decode(data: bytes) -> Trie:
    """The trie from :func:`encode`'s bytes. Raises LexiconError on anything malformed."""
    trie = Trie()
    path = [0]    # the nodes from the root to where we are
    i = 0
    data = bytes(data)
    while i < len(data):
        b = data[i]
        i += 1
        if b == 0:
            path.pop()
            if not path:
                break
            continue
        c = chr(b & 0x7F)
        if c not in WORD_CHARS or len(path) > MAX_WORD_LEN:
            raise LexiconError(f"byte {i - 1}: {b:#04x} is not a word character edge")
        node = path[-1]
        if c in trie.children[node]:
            raise LexiconError(f"byte {i - 1}: the character {c!r} appears twice under one node")
        child = len(trie.ends)
        trie.children[node][c] = child
        trie.children.append({})
        trie.ends.append(bool(b & 0x80))
        path.append(child)
        if len(trie.ends) > MAX_WORDS * MAX_WORD_LEN:
            raise LexiconError("too many trie nodes")
    if path or i != len(data):
        raise LexiconError("the trie bytes end in the middle of a node, or run on after the root")
    for n, ch in enumerate(trie.children):
        if not ch and not trie.ends[n] and n:
            raise LexiconError("a trie leaf that ends no word")
    return trie


class WordState:
    """Where a phrase being written stands in the lexicon, and which characters of the
    voice's vocabulary may come next (indices into ``vocab``; index 0 is the end).

    The allowed indices are computed once per trie node when the lexicon is loaded, so a
    step costs a list lookup."""

    def __init__(self, trie: Trie, vocab: str):
        self.trie = trie
        index = {c: i for i, c in enumerate(vocab)}
        n = len(vocab)
        self._sep = np.zeros(n, bool)
        for i, c in enumerate(vocab):
            self._sep[i] = i == 0 or c not in WORD_CHARS
        self._space = index.get(" ", -1)
        #: per node, its children by vocabulary index
        self._next: list[dict[int, int]] = [
            {index[c]: child for c, child in kids.items() if c in index} for kids in trie.children]
        masks = []
        for node, kids in enumerate(self._next):
            m = np.zeros(n, bool)
            m[list(kids)] = True
            if node and trie.ends[node]:
                m |= self._sep
            masks.append(m)
        # after punctuation: a space or the end; after a space: a new word; the phrase's
        # first character begins a word. A mask left empty (a vocabulary without the
        # lexicon's letters) allows only the end, so a phrase always stops.
        punct = np.zeros(n, bool)
        punct[0] = True
        if self._space >= 0:
            punct[self._space] = True
        masks += [punct, masks[0].copy(), masks[0].copy()]
        self._allowed = [np.flatnonzero(m) if m.any() else np.zeros(1, np.int64) for m in masks]
        self.reset()

    def reset(self) -> None:
        self.node = 0
        self.started = False

    @property
    def allowed(self) -> np.ndarray:
        """The vocabulary indices that may come next, ascending (0 is the phrase's end)."""
        if not self.started:
            return self._allowed[-1]
        return self._allowed[self.node] if self.node >= 0 else self._allowed[self.node - 1]

    def push(self, i: int) -> None:
        """Follow vocabulary index ``i`` (one the mask allowed)."""
        self.started = True
        if self._sep[i]:           # -1: after a space, -2: after punctuation
            self.node = -1 if i == self._space else -2
            return
        nxt = self._next[self.node if self.node >= 0 else 0].get(i)
        self.node = -1 if nxt is None else nxt

    def at_word_end(self) -> bool:
        return self.node < 0 or bool(self.trie.ends[self.node])
