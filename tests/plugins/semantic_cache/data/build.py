"""Build ``pairs.jsonl`` from the hand-written sources in ``src/``.

    uv run python tests/plugins/semantic_cache/data/build.py

Each source line is ``label|domain|kind|a|b``: label 1 when the answer to ``a`` fully and
correctly answers ``b`` (a hit is right), 0 when it does not (a hit would serve a wrong
answer). The split is fixed by a hash of the pair, so adding pairs never moves old ones:
about 35% go to ``test``, which no threshold or word list is tuned on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).parent


def split_of(a: str, b: str) -> str:
    digest = hashlib.sha256(f"{a}\0{b}".encode()).digest()
    return "test" if digest[0] < 90 else "dev"  # 90/256 = 35%


def main() -> None:
    rows = []
    seen = set()
    for source in sorted((HERE / "src").glob("*.txt")):
        lang = source.name.split("_")[0]
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            label, domain, kind, a, b = line.split("|")
            if (a, b) in seen:
                raise SystemExit(f"{source.name}:{number}: duplicate pair")
            seen.add((a, b))
            rows.append({
                "lang": lang, "domain": domain, "kind": kind, "same": label == "1",
                "a": a, "b": b, "split": split_of(a, b),
            })  # fmt: skip
    with (HERE / "pairs.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    for lang in ("en", "zh"):
        for split in ("dev", "test"):
            chosen = [r for r in rows if r["lang"] == lang and r["split"] == split]
            same = sum(r["same"] for r in chosen)
            print(f"{lang} {split}: {len(chosen)} pairs, {same} same, {len(chosen) - same} not")


if __name__ == "__main__":
    main()
