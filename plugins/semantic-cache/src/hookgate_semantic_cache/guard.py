"""The near-miss guard: a semantic hit must not change a number, a name, a negation or a unit.

Sentence embeddings put "What is 2+2?" and "What is 2+3?" (or "capital of France" and
"capital of Germany") very close together, yet their answers differ. So a candidate above
the similarity threshold is served only when both questions carry the same
:class:`Facts`: numbers (digits, English and Chinese number words), negations, units (in
order: "miles to km" is not "km to miles"), names (capitalised words, quoted text, acronyms,
Chinese book titles), and, for Chinese text, the same content characters apart from
question and function words (Chinese has no capitals to mark a name: 北京 vs 上海).

The facts are extracted once per text; the stored entry keeps its facts as a string, so a
lookup compares strings, not models.
"""

# Chinese and typographic punctuation and numerals are what this module reads:
# ruff: noqa: RUF001

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Facts", "facts"]

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 10**6, "billion": 10**9, "first": 1, "second": 2, "third": 3, "fourth": 4,
    "fifth": 5, "half": 0.5, "dozen": 12, "once": 1, "twice": 2, "pair": 2, "couple": 2,
}  # fmt: skip
_CJK_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
    "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_CJK_MAGNITUDES = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8}
_NEGATIONS_EN = {
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor",
    "without", "cannot", "non", "except", "excluding", "unless",
}  # fmt: skip
_NEGATIONS_ZH = ("不", "没", "無", "无", "非", "未", "别", "勿", "莫", "否")
_UNITS_EN = {
    "mm": "mm", "cm": "cm", "m": "m", "km": "km", "kilometer": "km", "kilometre": "km",
    "meter": "m", "metre": "m", "centimeter": "cm", "millimeter": "mm", "mile": "mile",
    "mi": "mile", "foot": "ft", "feet": "ft", "ft": "ft", "inch": "in", "inches": "in",
    "yard": "yd", "g": "g", "gram": "g", "kg": "kg", "kilogram": "kg", "kilo": "kg",
    "pound": "lb", "lb": "lb", "lbs": "lb", "ounce": "oz", "oz": "oz", "ton": "t",
    "tonne": "t", "celsius": "C", "fahrenheit": "F", "kelvin": "K", "liter": "l",
    "litre": "l", "l": "l", "ml": "ml", "gallon": "gal", "cup": "cup", "second": "s",
    "sec": "s", "minute": "min", "min": "min", "hour": "h", "hr": "h", "day": "d",
    "week": "wk", "month": "mo", "year": "yr", "decade": "dec", "century": "cent",
    "dollar": "USD", "usd": "USD", "euro": "EUR", "eur": "EUR", "yen": "JPY",
    "yuan": "CNY", "rmb": "CNY", "pound sterling": "GBP", "gbp": "GBP", "percent": "%",
    "byte": "B", "kb": "KB", "mb": "MB", "gb": "GB", "tb": "TB", "mph": "mph",
    "kmh": "kmh", "watt": "W", "kw": "kW", "volt": "V",
}  # fmt: skip
# Longest first, so that 公里 is read before 里 and 分钟 before 分.
_UNITS_ZH = {
    "毫米": "mm", "厘米": "cm", "公里": "km", "千米": "km", "英里": "mile", "英尺": "ft",
    "英寸": "in", "码": "yd", "米": "m", "公斤": "kg", "千克": "kg", "克": "g", "磅": "lb",
    "盎司": "oz", "吨": "t", "摄氏": "C", "华氏": "F", "开尔文": "K", "毫升": "ml",
    "升": "l", "加仑": "gal", "秒": "s", "分钟": "min", "小时": "h", "天": "d", "日": "d",
    "星期": "wk", "周": "wk", "个月": "mo", "月": "mo", "年": "yr", "世纪": "cent",
    "美元": "USD", "欧元": "EUR", "日元": "JPY", "人民币": "CNY", "元": "CNY",
    "英镑": "GBP", "百分之": "%", "字节": "B", "瓦": "W", "伏": "V",
}  # fmt: skip
_UNITS_ZH_RE = re.compile("|".join(sorted(map(re.escape, _UNITS_ZH), key=len, reverse=True)))
# Question and function words that paraphrases swap freely: a difference in these is no
# difference in meaning. Everything else in Chinese text must match.
_ZH_FUNCTION = set(
    "的了吗呢吧啊呀么嘛是在有和与及或也都就还又再很太最更请问您你我他她它们这那哪些个"
    "如何怎样么什为啥谁几多少里儿可以能会要想该应得地着过把被给让对向从到于以之其而且"
    "所则并即该一下点呢上中请帮告诉知道一下吗说讲解释介绍什么样子时候呢才好去来做用写"
    "到底究竟具体简单详细关于作呀哦嗯呗共总"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+(?:[.,]\d+)*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CJK_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+")
_QUOTED = re.compile(r"[\"“”「」『』'‘’]([^\"“”「」『』'‘’]{1,80})[\"“”「」『』'‘’]")
_BOOK = re.compile(r"《([^》]{1,40})》")
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
# Sentence-initial words that are capitalised only because they start the sentence.
_COMMON = {
    "what", "how", "who", "whom", "whose", "why", "when", "where", "which", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "is", "are", "was", "were",
    "am", "be", "do", "does", "did", "have", "has", "had", "tell", "give", "write", "explain",
    "describe", "list", "show", "please", "summarize", "summarise", "translate", "convert",
    "define", "recommend", "compare", "find", "make", "create", "help", "the", "a", "an",
    "in", "on", "at", "for", "of", "to", "from", "with", "by", "about", "and", "or", "but",
    "if", "so", "my", "your", "our", "their", "his", "her", "its", "this", "that", "these",
    "those", "there", "here", "it", "we", "you", "they", "he", "she", "i", "me", "let",
    "hi", "hello", "hey", "thanks", "thank", "any", "some", "all", "each", "every", "get", "need", "want", "name", "say", "suggest", "calculate", "compute", "check",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Facts:
    """What two questions must share for one's answer to serve the other."""

    numbers: tuple[str, ...]
    negations: int
    units: tuple[str, ...]
    names: frozenset[str]
    cjk: frozenset[str]

    def matches(self, other: Facts) -> bool:
        """Whether a question with these facts may be answered with ``other``'s answer.

        Chinese content characters must be the same set, but for one character added on
        one side (时间 for 点, 作者 for 写): the local model reads most Chinese characters
        as unknown tokens, so these sets are what tell 北京 from 上海 and 密码 from 账户.
        """
        if (
            self.numbers != other.numbers
            or self.negations != other.negations
            or self.units != other.units
            or self.names != other.names
        ):
            return False
        extra, missing = self.cjk - other.cjk, other.cjk - self.cjk
        return not (extra and missing) and len(extra) + len(missing) <= 1

    def dumps(self) -> str:
        """As a JSON string, for an entry's metadata."""
        return json.dumps(
            [list(self.numbers), self.negations, list(self.units), sorted(self.names),
             "".join(sorted(self.cjk))],
            ensure_ascii=False,
        )  # fmt: skip

    @classmethod
    def loads(cls, text: str) -> Facts:
        numbers, negations, units, names, cjk = json.loads(text)
        return cls(tuple(numbers), int(negations), tuple(units), frozenset(names), frozenset(cjk))


def _plural(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2] in _UNITS_EN:
        return word[:-2]
    if word.endswith("s") and len(word) > 2:
        return word[:-1]
    return word


def _cjk_number(text: str) -> str:
    if all(ch in _CJK_DIGITS for ch in text):
        return "".join(str(_CJK_DIGITS[ch]) for ch in text)
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _CJK_DIGITS:
            digit = _CJK_DIGITS[ch]
        else:
            magnitude = _CJK_MAGNITUDES[ch]
            if magnitude >= 10**4:
                total += (section + (digit or 0)) * magnitude
                section = 0
            else:
                section += (1 if digit is None else digit) * magnitude
            digit = None
    return str(total + section + (digit or 0))


def _number(value: float) -> str:
    return f"{value:g}"


def facts(text: str) -> Facts:
    """Extract the facts of one question."""
    text = unicodedata.normalize("NFKC", text)
    numbers: list[str] = []
    units: list[str] = []
    names: set[str] = set()
    negations = 0

    names.update(f"'{q.strip().lower()}" for q in _QUOTED.findall(text))
    names.update(f"《{b.strip()}" for b in _BOOK.findall(text))

    sentence_start = True
    last_end = 0
    for match in _WORD.finditer(text):
        if _SENTENCE_END.search(text, last_end, match.start()):
            sentence_start = True
        last_end = match.end()
        word = match.group()
        lower = word.lower().replace("’", "'")
        if lower.endswith(("'s", "'re", "'ll", "'ve", "'d", "'m")):
            lower = lower.rsplit("'", 1)[0]
        if word[0].isdigit():
            numbers.append(_number(float(word.replace(",", ""))))
        elif lower.endswith("n't") or lower in _NEGATIONS_EN:
            negations += 1
        elif lower in _NUMBER_WORDS:
            numbers.append(_number(_NUMBER_WORDS[lower]))
        else:
            singular = _plural(lower)
            if singular in _UNITS_EN or lower in _UNITS_EN:
                units.append(_UNITS_EN.get(singular) or _UNITS_EN[lower])
            elif (
                any(ch.isupper() for ch in word)
                and not (sentence_start and lower in _COMMON)
                and lower != "i"
            ):
                names.add(lower)
        sentence_start = False
    for ch in text:
        if ch == "%":
            units.append("%")

    cjk_text = "".join(ch if _CJK.match(ch) else " " for ch in text)
    for run in _CJK_NUMBER.findall(cjk_text):
        if run in ("一", "一下") or (len(run) == 1 and run in _CJK_MAGNITUDES and run != "十"):
            continue
        numbers.append(_cjk_number(run))
    for unit in _UNITS_ZH_RE.findall(cjk_text):
        units.append(_UNITS_ZH[unit])
    negations += sum(cjk_text.count(neg) for neg in _NEGATIONS_ZH)
    cjk = frozenset(
        ch
        for ch in cjk_text
        if ch != " "
        and ch not in _ZH_FUNCTION
        and ch not in _CJK_DIGITS
        and ch not in _CJK_MAGNITUDES
        and ch not in _NEGATIONS_ZH
    )
    return Facts(tuple(numbers), negations, tuple(units), frozenset(names), cjk)
