"""The verifier on held-out pairs, its explanations, and the near-miss kinds it refuses.

Every test goes through a real gateway (mock provider, embedded Chroma store, the local
MiniLM model): store one question's answer, ask another, look at what the caller gets.
"""

# Chinese punctuation is part of the questions:
# ruff: noqa: RUF001

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import httpx
import numpy as np
import orjson
import pytest
from hookgate import CallOptions, Gateway
from hookgate_semantic_cache.embedders import MiniLMEmbedder
from hookgate_semantic_cache.verify import verify_batch

from tests.plugins.semantic_cache.conftest import settings

SEMANTIC = {"cache": {"mode": "semantic", "max_age": 60}}
DATA = Path(__file__).parent / "data"
SEED_PAIRS = Path(__file__).with_name("pairs.jsonl")


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def ask(gw: Gateway, text: str, namespace: str = "default") -> tuple[str, str, str | None]:
    """Ask; return (answer, cache status, cache reason)."""
    answer = await gw.chat.completions.create(
        model="mock-1",
        messages=user(text),
        config=SEMANTIC,
        options=CallOptions(provider="mock", cache_namespace=namespace),
    )
    outcome = answer.hookgate
    return answer.choices[0].message.content, outcome.cache_status, outcome.cache_reason


@pytest.fixture
async def gw(tmp_path: Path):
    async with Gateway(settings({"path": str(tmp_path / "store")})) as gateway:
        yield gateway


def decide(pairs: list[dict]) -> list[bool]:
    """The plugin's own decision for each pair (its embedder, its verifier, its defaults):
    would asking ``b`` be served ``a``'s stored answer?"""
    model = MiniLMEmbedder()
    model.load()
    texts = sorted({t for p in pairs for t in (p["a"], p["b"])})
    vectors = dict(zip(texts, model.embed_sync(texts), strict=True))
    triples = [(p["b"], p["a"], float(np.dot(vectors[p["a"]], vectors[p["b"]]))) for p in pairs]
    return [verdict.hit for verdict in verify_batch(triples)]


def rates(pairs: list[dict], hits: list[bool]) -> dict[str, tuple[float, float, int]]:
    """Precision, recall and false hits per language."""
    out = {}
    for lang in ("en", "zh"):
        cells = [(h, p["same"]) for p, h in zip(pairs, hits, strict=True) if p["lang"] == lang]
        tp = sum(1 for h, same in cells if h and same)
        fp = sum(1 for h, same in cells if h and not same)
        out[lang] = (tp / max(tp + fp, 1), tp / sum(1 for _, same in cells if same), fp)
    return out


def labelled(split: str) -> list[dict]:
    if split.startswith("fresh"):
        path = DATA / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        assert {r["lang"] for r in rows} == {"en", "zh"}
        return rows
    rows = [json.loads(line) for line in (DATA / "pairs.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) >= 1000 and {r["lang"] for r in rows} == {"en", "zh"}
    return [r for r in rows if r["split"] == split]


# What the defaults reach on the held-out sets (bench/semantic_cache_quality.py --split test,
# fresh, fresh2, fresh3 print them), rounded down. Each fresh set was written in other domains
# and phrasings, scored blind once, then read to write general rules (data/build.py says
# which rules came after which set); fresh3 was read last. The target is precision
# >= 0.97 and recall >= 0.75 in both languages: on sets the rules were not written from it
# is not reached (fresh3 blind: English 0.886 / 0.620, Chinese 0.793 / 0.460).
HELD_OUT_FLOORS = {
    "test": {"en": (0.96, 0.75), "zh": (0.96, 0.75)},
    "fresh": {"en": (0.99, 0.73), "zh": (0.96, 0.58)},
    "fresh2": {"en": (0.96, 0.70), "zh": (0.97, 0.60)},
    "fresh3": {"en": (0.90, 0.60), "zh": (0.92, 0.46)},
}


@pytest.mark.parametrize("split", ["test", "fresh", "fresh2", "fresh3"])
def test_precision_and_recall_on_the_held_out_sets(split: str) -> None:
    pairs = labelled(split)
    for lang, (precision, recall, false_hits) in rates(pairs, decide(pairs)).items():
        precision_floor, recall_floor = HELD_OUT_FLOORS[split][lang]
        assert precision >= precision_floor, (split, lang, precision, false_hits)
        assert recall >= recall_floor, (split, lang, recall)


def test_precision_and_recall_on_the_earlier_seed_pairs() -> None:
    """The project's first 137 pairs, which the verifier's word lists were not built on."""
    pairs = [json.loads(line) for line in SEED_PAIRS.read_text("utf-8").splitlines()]
    for lang, (_, recall, false_hits) in rates(pairs, decide(pairs)).items():
        assert false_hits == 0, lang
        assert recall >= 0.85, (lang, recall)


async def test_the_gateway_decides_as_the_verifier_does(gw: Gateway) -> None:
    """A sample of the test split through the gateway: store ``a``, ask ``b`` (each pair in
    its own namespace); the gateway serves exactly the pairs the verifier accepts, with the
    stored answer, and every lookup explains itself."""
    pairs = labelled("test")[::6]
    expected = decide(pairs)
    for number, (pair, hit) in enumerate(zip(pairs, expected, strict=True)):
        namespace = f"pair-{number}"
        await ask(gw, pair["a"], namespace)
        text, status, reason = await ask(gw, pair["b"], namespace)
        assert reason, pair
        assert (status == "SEMANTIC HIT") == hit, (pair, status, reason)
        if hit:
            assert text == f"[mock] you said: {pair['a']}"


# ---- the explanations --------------------------------------------------------------------


async def test_a_hit_and_a_refusal_explain_themselves_over_http(gw: Gateway, serve) -> None:
    headers = {"x-portkey-provider": "mock", "x-portkey-config": json.dumps(SEMANTIC)}
    answers = {}
    with serve(gw) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
            for question in (
                "How do I turn on dark mode?",
                "How can I turn on dark mode?",
                "How do I turn off dark mode?",
                "今天北京天气怎么样？",
                "明天北京天气怎么样？",
            ):
                answers[question] = await client.post(
                    "/v1/chat/completions", json={"model": "mock-1", "messages": user(question)}
                )
    hit = answers["How can I turn on dark mode?"]
    assert hit.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    assert hit.headers["x-hookgate-cache-reason"] == "ok"
    assert 0.9 < float(hit.headers["x-hookgate-cache-similarity"]) <= 1

    refused = answers["How do I turn off dark mode?"]
    assert refused.headers["x-portkey-cache-status"] == "SEMANTIC MISS"
    assert refused.headers["x-hookgate-cache-reason"] == "opposite: disabl/enabl"
    assert float(refused.headers["x-hookgate-cache-similarity"]) > 0.8  # close, yet refused
    assert refused.json()["choices"][0]["message"]["content"].endswith("turn off dark mode?")

    chinese = answers["明天北京天气怎么样？"]
    assert chinese.headers["x-portkey-cache-status"] == "SEMANTIC MISS"
    reason = chinese.headers["x-hookgate-cache-reason"]
    assert reason.isascii()  # header values are Latin-1: the Chinese words are %-encoded
    assert unquote(reason) == "time: 明天 vs 今天"


async def test_the_log_record_carries_the_similarity_and_the_reason(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    config = {
        "gateway": {"plugins": ["mock", "logging", "semantic-cache"], "default_provider": "mock"},
        "plugins": {
            "semantic-cache": {"path": str(tmp_path / "store"), "prune_interval": 0},
            "logging": {"log_to": str(log_file)},
        },
    }
    async with Gateway(config) as gw:
        await ask(gw, "Convert 10 miles to kilometers")
        await ask(gw, "Convert 10 kilometers to miles")
        await ask(gw, "Please convert 10 miles to kilometers")
        assert await gw.plugin("logging").flush()
    records = [orjson.loads(line) for line in log_file.read_text().splitlines() if line]
    first, reversed_, paraphrase = records
    assert first["cache_status"] == "SEMANTIC MISS"
    assert first["cache_reason"] == "no candidate: nothing stored"
    assert reversed_["cache_status"] == "SEMANTIC MISS"
    assert reversed_["cache_reason"].startswith("order: ")
    assert reversed_["cache_similarity"] > 0.8
    assert paraphrase["cache_status"] == "SEMANTIC HIT"
    assert paraphrase["cache_reason"] == "ok"
    assert paraphrase["cache_similarity"] > 0.9


# ---- the regression list: near misses (never served) and paraphrases (served) ----------

# (stored question, asked question, the start of the reason it is refused)
NEAR_MISSES = [
    # one word for another below the "replaced" floor (the support-desk replay's mix-ups)
    ("How do I delete my API key?", "How do I reset my API key?", "similarity"),
    ("How do I download my tax receipt?", "How do I verify my tax receipt?", "similarity"),
    ("How do I rename my account?", "How do I rename my username?", "similarity"),
    # an action and its opposite
    ("How can I mute the group chat?", "How can I unmute the group chat?", "opposite"),
    (
        "What is the fastest way to gain muscle?",
        "What is the fastest way to lose muscle?",
        "opposite",
    ),
    ("怎么打开蓝牙？", "怎么关闭蓝牙？", "opposite"),
    ("怎么绑定邮箱？", "怎么解绑邮箱？", "opposite"),
    # two things in the other order
    ("Is a kilogram heavier than a pound?", "Is a pound heavier than a kilogram?", "order"),
    ("Train times from Leeds to York", "Train times from York to Leeds", "order"),
    ("从南京到杭州多远？", "从杭州到南京多远？", "order"),
    ("英镑兑人民币汇率是多少？", "人民币兑英镑汇率是多少？", "order"),
    # relative time
    ("What is on TV tonight?", "What is on TV tomorrow?", "time"),
    ("下周有什么活动？", "这周有什么活动？", "time"),
    # audience and level
    ("Explain inflation to a child.", "Explain inflation to an economist.", "audience"),
    ("给初学者推荐一本Python书", "给专家推荐一本Python书", "audience"),
    # a word that changes the answer
    ("Is this soup vegetarian?", "Is this soup vegan?", "opposite"),
    ("这款咖啡是低糖的吗？", "这款咖啡是无糖的吗？", "negation"),
    # numbers, units, dates and names
    ("What is 12 percent of 50?", "What is 13 percent of 50?", "number"),
    ("五加三等于几？", "五加四等于几？", "number"),
    ("How many grams in 2 cups of sugar?", "How many ounces in 2 cups of sugar?", "unit"),
    ("What day of the week is 3 May 2030?", "What day of the week is 4 May 2030?", "number"),
    ("Who is the mayor of Boston?", "Who is the mayor of Denver?", "name"),
    ("广州有什么好吃的？", "深圳有什么好吃的？", "substitution"),
    # negation
    ("Which fruits are safe for dogs?", "Which fruits are not safe for dogs?", "negation"),
    ("哪些药可以一起吃？", "哪些药不可以一起吃？", "negation"),
    # whose: the same question about another person
    ("What is your favourite colour?", "What is my favourite colour?", "person"),
    ("你最喜欢什么颜色", "我最喜欢什么颜色", "person"),
    ("How do I check my credit report?", "How do I check someone else's credit report?", "person"),
    # one of them or all of them
    ("How do I archive an email in Gmail?", "How do I archive all emails in Gmail?", "scope"),
    ("怎么删除一条朋友圈", "怎么批量删除朋友圈", "scope"),
    # a condition the other question does not have
    (
        "Can I use my phone abroad?",
        "Can I use my phone abroad if I am on a prepaid plan?",
        "condition",
    ),
    (
        "What should I eat before a run?",
        "What should I eat before a run with a stomach ulcer?",
        "condition",
    ),
    ("可以退票吗", "如果已经过了发车时间还可以退票吗", "condition"),
    # a clause of its own added without a marker
    ("能做核磁共振吗", "心脏装过起搏器能做核磁共振吗", "added"),
    # a constraint that narrows a recommendation
    ("Best places to eat in Lisbon", "Best cheap places to eat in Lisbon", "qualifier"),
    ("成都有什么好吃的", "成都有什么便宜的好吃的", "qualifier"),
    # who did what to whom
    ("我能替同事值班吗", "同事能替我值班吗", "order"),
    (
        "How do I find out who blocked my account?",
        "How do I find out whose account I blocked?",
        "order",
    ),
    # when, where, who, why ask for other answers
    ("When was the Eiffel Tower built?", "Where was the Eiffel Tower built?", "asks"),
    ("长城是谁修的", "长城是什么时候修的", "asks"),
    # a version that differs in its digits
    ("How do I install Windows 10 drivers?", "How do I install Windows 11 drivers?", "number"),
    ("How do I pair an Xbox360 controller?", "How do I pair an Xbox720 controller?", "number"),
    # a direction particle
    ("How do I zoom in on a PDF?", "How do I zoom out on a PDF?", "opposite"),
]

# (stored question, asked question): the same question in other words
PARAPHRASES = [
    ("how do i install python on windows", "How do I install Python on Windows?"),  # case
    ("What is the best way to learn CSS?", "What's the best way to learn css?"),
    ("Can I Change My Delivery Date?", "Can I change my delivery date?"),  # capitals
    ("How many minutes should I boil an egg?", "How many minutes do I boil an egg?"),  # time
    ("这个手机特别卡怎么办？", "这个手机很卡怎么办？"),  # 特别 is no negation
    ("有没有办法恢复误删的照片？", "有办法恢复误删的照片吗？"),  # 有没有 is a question
    ("怎么修改密码？", "如何更改密码？"),  # Chinese synonyms
    ("外卖一般几分钟送到？", "外卖通常多少分钟送到？"),  # 几 / 多少
    ("How do I reset my password?", "How can you reset a password?"),  # a generic "you"
    ("Do you ship to Canada?", "Can you ship my order to Canada?"),  # the shop
    ("你们支持货到付款吗", "可以货到付款吗"),  # 你们 is the shop
    ("煎好的牛排要放多久再切", "牛排煎好后要静置几分钟再切"),  # 多久 / 几分钟 are no 多 / 少
    ("whats the best way to store basil", "what's the best way to store basil?"),  # no apostrophe
    ("这个面包保质期长不", "这个面包保质期长吗"),  # a 不 that ends the question asks it
    ("Who is the author of Dune?", "Dune was written by whom?"),  # who, wherever it stands
]


@pytest.mark.parametrize(("stored", "asked", "reason"), NEAR_MISSES)
async def test_near_misses_are_refused_with_their_reason(
    gw: Gateway, stored: str, asked: str, reason: str
) -> None:
    await ask(gw, stored)
    text, status, why = await ask(gw, asked)
    assert (text, status) == (f"[mock] you said: {asked}", "SEMANTIC MISS")
    assert why is not None and why.startswith(reason), why


@pytest.mark.parametrize(("stored", "asked"), PARAPHRASES)
async def test_paraphrases_are_served(gw: Gateway, stored: str, asked: str) -> None:
    await ask(gw, stored)
    text, status, why = await ask(gw, asked)
    assert (text, status) == (f"[mock] you said: {stored}", "SEMANTIC HIT"), why
    assert why is not None and why.startswith("ok")
