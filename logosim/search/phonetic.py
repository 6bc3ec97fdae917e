"""Phonetic similarity of word elements: ALINE (Kondrak 2000) over IPA, vectorised.

An examiner compares how marks *sound*: "KWIK FIT" and "QUICK FIT" are confusingly similar
though they share few letters. Text is normalised (NFKC, case-folded, ™®© and legal suffixes
such as Ltd/GmbH/Inc stripped), turned into IPA by espeak-ng (through ``phonemizer``) and
encoded as integer codes once per mark (at index time). A query's text is then aligned
against 1,000 candidates at once: the ALINE dynamic programme runs row by row over the
query's segments with numpy over all candidates (the "skip from the left" dependency is a
running maximum), a few ms in all instead of ~1 ms a pair with ``nltk.metrics.aline``.

The raw score is normalised by the self-alignment scores, ``2·S(a,b) / (S(a,a) + S(b,b))``,
and rescaled so that unrelated names (which still score ~0.2–0.5) land near 0:
``clip((s − floor) / (1 − floor), 0, 1)``.

Where espeak-ng is missing the method falls back to Metaphone codes (``jellyfish``) with a
normalised edit-distance similarity; ``method`` says which one is in use. Text that
normalises or phonemises to nothing is "no text": its term is absent, not zero.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from loguru import logger

LEGAL_SUFFIXES = (
    "ltd", "limited", "gmbh", "inc", "incorporated", "llc", "llp", "corp", "corporation", "co",
    "company", "plc", "sa", "sas", "sarl", "ag", "kg", "bv", "nv", "srl", "spa", "oy", "ab",
    "as", "asa", "pty", "pte", "kk", "sl", "se",
)  # fmt: skip
_SYMBOLS = re.compile(r"[™®©℠]")
_NON_WORD = re.compile(r"[^\w]+")
NO_TEXT = np.zeros(0, dtype=np.int16)
DEFAULT_FLOOR = 0.45  # normalised ALINE of unrelated names sits around 0.2–0.5
_IPA_FIXES = {"ɡ": "g", "ɚ": "əɹ", "ɝ": "ɜɹ", "ᵻ": "ɪ", "ɫ": "l", "ʔ": "", "r": "ɹ", "ɐ": "ɐ"}


def normalize_text(text: str | None) -> str:
    """NFKC, case-folded, ™®© removed, punctuation to spaces, trailing legal suffixes gone."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", _SYMBOLS.sub(" ", str(text)))  # ™ → "TM" under NFKC
    text = _SYMBOLS.sub(" ", text).casefold()
    words = [w for w in _NON_WORD.sub(" ", text).split() if w]
    while len(words) > 1 and words[-1].replace(".", "") in LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


# -- ALINE tables ------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray, float]:
    """Segment → code, and for codes: sub (P, P), delta (P, P), V (P,), skip cost."""
    from nltk.metrics import aline

    segments = [s for s in aline.feature_matrix if len(s) == 1]
    code = {s: i for i, s in enumerate(segments)}
    p = len(segments)
    delta = np.zeros((p, p), dtype=np.float32)
    for i, a in enumerate(segments):
        for j, b in enumerate(segments):
            delta[i, j] = aline.delta(a, b)
    vowel = np.array([aline.V(s) for s in segments], dtype=np.float32)
    sub = aline.C_sub - delta - vowel[:, None] - vowel[None, :]
    return code, sub.astype(np.float32), delta, vowel, float(aline.C_skip)


def ipa_codes(ipa: str) -> np.ndarray:
    """IPA text → ALINE segment codes (stress, length, ties and unknown signs dropped)."""
    code = _tables()[0]
    out = []
    for ch in ipa:
        for c in _IPA_FIXES.get(ch, ch):
            if c in code:
                out.append(code[c])
    return np.asarray(out, dtype=np.int16)


class Phonemizer:
    """Text → IPA with espeak-ng (one backend, started once); None if unavailable."""

    def __init__(self, language: str = "en-us") -> None:
        self.backend = None
        try:
            from phonemizer.backend import EspeakBackend

            self.backend = EspeakBackend(language, preserve_punctuation=False, with_stress=False)
        except Exception as exc:  # espeak-ng or phonemizer missing
            logger.warning(f"phonetic text: espeak-ng unavailable ({exc}); using Metaphone")

    @property
    def method(self) -> str:
        return "aline-ipa" if self.backend is not None else "metaphone"

    def ipa(self, texts: Sequence[str]) -> list[str]:
        assert self.backend is not None
        if not texts:
            return []
        return [s.strip() for s in self.backend.phonemize(list(texts), strip=True, njobs=1)]


@lru_cache(maxsize=1)
def default_phonemizer() -> Phonemizer:
    return Phonemizer()


def aline_scores(query: np.ndarray, cands: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Raw ALINE scores of one code sequence against K padded ones (K, L) → (K,)."""
    _, sub, delta, vowel, skip = _tables()
    k, n = cands.shape
    m = len(query)
    if not m or not n:
        return np.zeros(k, dtype=np.float32)
    valid = np.arange(n)[None, :] < lengths[:, None]
    b = np.where(valid, cands, 0).astype(np.intp)
    neg = np.float32(-1e9)
    prev2 = np.zeros((k, n + 1), dtype=np.float32)  # S[i-2]
    prev = np.zeros((k, n + 1), dtype=np.float32)  # S[i-1]
    best = np.zeros(k, dtype=np.float32)
    steps = skip * np.arange(n + 1, dtype=np.float32)
    # expansion of candidate pair (b[j-1], b[j]) into query segment a: C_exp − δ(a,b1) − δ(a,b2)
    # − V(a) − max(V(b1), V(b2))
    vb = vowel[b]
    vpair = np.maximum(vb[:, 1:], vb[:, :-1])  # (K, n-1)
    c_exp = 45.0
    for i in range(1, m + 1):
        a = int(query[i - 1])
        x = np.zeros((k, n + 1), dtype=np.float32)
        x[:, 1:] = np.maximum(prev[:, 1:] + skip, prev[:, :-1] + np.where(valid, sub[a, b], neg))
        if i > 1:  # query pair (a_{i-1}, a_i) compresses onto candidate segment b_j
            a0 = int(query[i - 2])
            e = c_exp - delta[b, a0] - delta[b, a] - vb - max(vowel[a0], vowel[a])
            x[:, 1:] = np.maximum(x[:, 1:], prev2[:, :-1] + np.where(valid, e, neg))
        if n > 1:  # query segment a expands onto candidate pair (b_{j-1}, b_j)
            e = c_exp - delta[a, b[:, :-1]] - delta[a, b[:, 1:]] - vowel[a] - vpair
            x[:, 2:] = np.maximum(x[:, 2:], prev[:, :-2] + np.where(valid[:, 1:], e, neg))
        x = np.maximum(x, 0.0)
        row = np.maximum.accumulate(x - steps, axis=1) + steps  # skip-from-left chains
        row[:, 1:] = np.where(valid, row[:, 1:], 0.0)
        best = np.maximum(best, row.max(axis=1))
        prev2, prev = prev, row
    return best


def self_score(codes: np.ndarray) -> float:
    if not len(codes):
        return 0.0
    return float(aline_scores(codes, codes[None, :], np.array([len(codes)]))[0])


class TextTable:
    """The word elements of a gallery as padded code rows (built once, at index time)."""

    def __init__(self, texts: Sequence[str | None], phonemizer: Phonemizer | None = None):
        self.phonemizer = phonemizer or default_phonemizer()
        self.method = self.phonemizer.method
        self.texts = [normalize_text(t) for t in texts]
        self.keys = self._keys(self.texts)
        self.lengths = np.array([len(c) for c in self.keys], dtype=np.int32)
        width = max(1, int(self.lengths.max(initial=0)))
        self.codes = np.zeros((len(self.keys), width), dtype=np.int16)
        for row, c in enumerate(self.keys):
            self.codes[row, : len(c)] = c
        self.self_scores = np.array(
            [self._self(c) for c in self.keys], dtype=np.float32
        )  # aline-ipa only; Metaphone uses lengths

    def arrays(self) -> dict[str, np.ndarray]:
        """What ``from_arrays`` needs: codes, lengths, self scores and the method."""
        return {
            "codes": self.codes,
            "lengths": self.lengths,
            "self_scores": self.self_scores,
            "method": np.asarray(self.method),
        }

    @classmethod
    def from_arrays(cls, arrays, phonemizer: Phonemizer | None = None) -> TextTable:
        """A table saved with ``arrays`` (the same method must still be available)."""
        table = cls.__new__(cls)
        table.phonemizer = phonemizer or default_phonemizer()
        table.method = str(arrays["method"])
        if table.method != table.phonemizer.method:
            raise ValueError(f"saved with {table.method}, {table.phonemizer.method} available")
        table.codes, table.lengths = arrays["codes"], arrays["lengths"]
        table.self_scores = arrays["self_scores"]
        table.texts, table.keys = [], []
        return table

    def _keys(self, texts: list[str]) -> list:
        if self.method == "aline-ipa":
            present = [t for t in texts if t]
            ipa = iter(self.phonemizer.ipa(present))
            return [ipa_codes(next(ipa)) if t else NO_TEXT for t in texts]
        import jellyfish

        return [np.frombuffer(jellyfish.metaphone(t).encode(), np.uint8) if t else NO_TEXT
                for t in texts]  # fmt: skip

    def _self(self, codes: np.ndarray) -> float:
        return self_score(codes) if self.method == "aline-ipa" else float(len(codes))

    def query(self, text: str | None) -> tuple[np.ndarray, float] | None:
        """A query's codes and self score; None when it has no (phonetic) text."""
        t = normalize_text(text)
        if not t:
            return None
        codes = self._keys([t])[0]
        return (codes, self._self(codes)) if len(codes) else None

    def scores(
        self, query: tuple[np.ndarray, float] | None, rows: np.ndarray, floor: float = DEFAULT_FLOOR
    ) -> np.ndarray:
        """Rescaled similarity of the query to gallery ``rows``; NaN where either has no text."""
        out = np.full(len(rows), np.nan, dtype=np.float32)
        if query is None or not len(rows):
            return out
        codes, own = query
        lengths = self.lengths[rows]
        has = lengths > 0
        if not has.any():
            return out
        sub = rows[has]
        if self.method == "aline-ipa":
            width = int(lengths[has].max())
            raw = aline_scores(codes, self.codes[sub, :width], self.lengths[sub])
            sim = 2 * raw / np.maximum(own + self.self_scores[sub], 1e-6)
        else:
            sim = np.array([_edit_similarity(codes, self.codes[r, : self.lengths[r]]) for r in sub])
        out[has] = np.clip((sim - floor) / (1.0 - floor), 0.0, 1.0)
        return out


def _edit_similarity(a: np.ndarray, b: np.ndarray) -> float:
    import jellyfish

    x, y = bytes(a.astype(np.uint8)).decode(), bytes(b.astype(np.uint8)).decode()
    return 1.0 - jellyfish.levenshtein_distance(x, y) / max(len(x), len(y), 1)
