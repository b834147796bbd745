"""Build ``pairs.jsonl`` from the hand-written sources in ``src/``.

    uv run python tests/plugins/semantic_cache/data/build.py

Each source line is ``label|domain|kind|a|b``: label 1 when the answer to ``a`` fully and
correctly answers ``b`` (a hit is right), 0 when it does not (a hit would serve a wrong
answer). The split is fixed by a hash of the pair, so adding pairs never moves old ones:
about 35% go to ``test``, which no threshold or word list is tuned on.

Each folder under ``src/`` is a further held-out set, written in domains and phrasings the
first set covers thinly (typos, no punctuation, colloquial and mixed Chinese-English), that
goes whole to ``<folder>.jsonl`` (split ``<folder>``). Each was scored once, blind, and its
errors were then read to write general rules, so only its first score is a held-out one:

* ``fresh`` (cooking, HR, legal, devices, gaming, weather, government services, finance...),
  before the rules for persons, scope, conditions, added clauses and qualifiers;
* ``fresh2`` (insurance, housing, gardening, music, sports, spreadsheets, devops, social apps,
  banking, tax, immigration, nutrition...), before the rules for who-did-what-to-whom,
  when/where/who/why and version names;
* ``fresh3`` (weddings, babies, cleaning, moving, crypto, streaming, security, careers,
  school subjects, skin and hair...), before the last few (Chinese when/where/who/why, scope
  and the person check ahead of the word comparison, someone else joining, better/worse).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).parent


def split_of(a: str, b: str) -> str:
    digest = hashlib.sha256(f"{a}\0{b}".encode()).digest()
    return "test" if digest[0] < 90 else "dev"  # 90/256 = 35%


def read(folder: Path, split: str | None) -> list[dict]:
    rows = []
    seen = set()
    for source in sorted(folder.glob("*.txt")):
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
                "a": a, "b": b, "split": split or split_of(a, b),
            })  # fmt: skip
    return rows


def write(rows: list[dict], name: str) -> None:
    with (HERE / name).open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    rows = read(HERE / "src", None)
    write(rows, "pairs.jsonl")
    splits = ["dev", "test"]
    for folder in sorted(p for p in (HERE / "src").iterdir() if p.is_dir()):
        held_out = read(folder, folder.name)
        write(held_out, f"{folder.name}.jsonl")
        rows += held_out
        splits.append(folder.name)
    for lang in ("en", "zh"):
        for split in splits:
            chosen = [r for r in rows if r["lang"] == lang and r["split"] == split]
            same = sum(r["same"] for r in chosen)
            print(f"{lang} {split}: {len(chosen)} pairs, {same} same, {len(chosen) - same} not")


if __name__ == "__main__":
    main()
