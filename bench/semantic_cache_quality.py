"""Precision and recall of the semantic cache's decision on the labelled pairs.

    uv run python bench/semantic_cache_quality.py [--split dev|test|fresh|fresh2|fresh3|all]
        [--by kind|domain]
        [--seed-pairs] [--timing]

For every pair of ``tests/plugins/semantic_cache/data/pairs.jsonl`` (hand-written English
and Chinese questions: ``a`` is stored, ``b`` is asked; ``same`` says whether ``a``'s answer
fully answers ``b``) it embeds both with the plugin's local model (all-MiniLM-L6-v2 int8)
and asks the verifier, exactly as a lookup does. A hit on a pair that is not ``same`` is a
false hit (another question's answer served). It prints, per language and per kind (or
domain): pairs, precision, recall and false hits; and the same for plain cosine
thresholds (no verifier), for comparison. The ``test`` split is never used to choose a
threshold or a word list; ``--split fresh`` and ``--split fresh2`` score ``data/fresh.jsonl``
and ``data/fresh2.jsonl``, held-out sets written later in other domains and phrasings (see
``data/build.py`` for what each was and was not used for; ``all`` is dev + test); ``--seed-pairs`` scores the project's earlier 137 pairs
(``tests/plugins/semantic_cache/pairs.jsonl``), which the verifier was not tuned on either.

``--timing`` adds the verifier's cost per (question, candidate) pair and per lookup of 8
candidates, and the embedding's, on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from hookgate_semantic_cache.embedders import MiniLMEmbedder
from hookgate_semantic_cache.verify import analyse, compare, verify, verify_batch

HERE = Path(__file__).resolve().parents[1] / "tests/plugins/semantic_cache"
PAIRS = HERE / "data/pairs.jsonl"
HELD_OUT_SETS = ("fresh", "fresh2", "fresh3")
SEED_PAIRS = HERE / "pairs.jsonl"


def table(rows: list[dict], hits: list[bool], by: str, title: str) -> None:
    groups: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    for row, hit in zip(rows, hits, strict=True):
        for key in ("all", row.get(by, "-")):
            groups[(row["lang"], key)].append((hit, row["same"]))
    print(f"\n{title}")
    print(
        f"{'lang':<4} {by:<16} {'pairs':>5} {'same':>5} {'precision':>9} {'recall':>6} {'false hits':>10}"
    )
    for (lang, key), cells in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])
    ):
        tp = sum(1 for hit, same in cells if hit and same)
        fp = sum(1 for hit, same in cells if hit and not same)
        positives = sum(1 for _, same in cells if same)
        precision = f"{tp / (tp + fp):.3f}" if tp + fp else "-"
        recall = f"{tp / positives:.3f}" if positives else "-"
        print(
            f"{lang:<4} {key:<16} {len(cells):>5} {positives:>5} {precision:>9} {recall:>6} {fp:>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test", *HELD_OUT_SETS, "all"), default="dev")
    parser.add_argument("--by", choices=("kind", "domain"), default="kind")
    parser.add_argument("--seed-pairs", action="store_true")
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args()
    if args.seed_pairs:
        rows = [json.loads(line) for line in SEED_PAIRS.read_text(encoding="utf-8").splitlines()]
    else:
        source = HERE / f"data/{args.split}.jsonl" if args.split in HELD_OUT_SETS else PAIRS
        rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
        if args.split != "all":
            rows = [r for r in rows if r["split"] == args.split]
    model = MiniLMEmbedder()
    model.load()
    texts = sorted({t for r in rows for t in (r["a"], r["b"])})
    vectors = dict(zip(texts, model.embed_sync(texts), strict=True))
    sims = [float(np.dot(vectors[r["a"]], vectors[r["b"]])) for r in rows]
    verdicts = [verify(r["b"], r["a"], s) for r, s in zip(rows, sims, strict=True)]
    name = "seed pairs" if args.seed_pairs else f"split {args.split}"
    table(rows, [v.hit for v in verdicts], args.by, f"verifier (the plugin's defaults), {name}")
    for threshold in (0.85, 0.9):
        table(rows, [s >= threshold for s in sims], args.by if False else "lang",
              f"plain MiniLM cosine >= {threshold}, no verifier, {name}")  # fmt: skip
    if args.timing:
        pairs = [(r["b"], r["a"], s) for r, s in zip(rows, sims, strict=True)]
        analyse.cache_clear()
        compare.cache_clear()
        start = time.perf_counter()
        verify_batch(pairs)
        cold = (time.perf_counter() - start) / len(pairs)
        compare.cache_clear()  # the questions' analyses stay cached, as a store's do
        start = time.perf_counter()
        verify_batch(pairs)
        warm = time.perf_counter() - start
        warm /= len(pairs)
        samples = []
        for text in texts[:200]:
            start = time.perf_counter()
            model.embed_sync([text])
            samples.append(time.perf_counter() - start)
        samples.sort()
        print(
            f"\nverifier: {cold * 1e6:.0f} us per pair with both texts analysed, {warm * 1e6:.0f} us "
            f"when analysed before (a stored question); 8 candidates: {8 * cold * 1e3:.2f} ms at most"
        )
        print(f"embedding one question (MiniLM int8, 1 thread): p50 "
              f"{samples[len(samples) // 2] * 1e3:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
