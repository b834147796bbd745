"""The verifier: does the stored question's answer answer this question?

Retrieval by embedding finds stored questions that are *about* the same thing; it cannot
tell "enable notifications" from "disable notifications", "London to New York" from "New
York to London", or 今天 from 明天. The verifier compares the two texts word by word
(characters for Chinese) after both are brought to a canonical form:

* case, inflection (plurals, -ing, -ed), contractions and full-width characters are folded;
* question and function words are dropped ("how do I", "can you", 请问, 怎么, 吗, 能不能);
* synonyms become one word (update/change/modify, 修改/更改/更换, 如何/怎样);
* numbers become digits (five, 5, 五 → 5), and the question forms 有没有, 能不能, 防不防
  become 有, 能, 防 (so their 不/没 are not read as negations).

What is left are content tokens in order. The two sequences are aligned
(:class:`difflib.SequenceMatcher`) and every difference must be harmless, else the
candidate is refused with a reason:

``number``, ``negation``, ``time``, ``opposite`` (an antonym lexicon and un-/dis-/de-/取消
prefixes), ``order`` (a content token that moved: "X to Y" vs "Y to X"), ``audience`` /
``level`` (for kids vs for experts, short vs detailed), ``different`` (a word replaced by a
word that is not its synonym: vegan vs vegetarian, password vs PIN, 北京 vs 上海) and
``extra`` (a content word only one side has, which narrows or changes the question).
Before the words are aligned, what a question is *about* is compared: ``person`` (the same
role held by another person: your name / my name, 你 / 我), ``scope`` (one of them / all of
them), ``condition`` (an "if ..." / 如果… clause whose content the other question lacks) and
``added`` (three or more content tokens on one side with nothing in their place: a case,
a constraint or an audience of its own, 肾不好的人); ``qualifier`` refuses a constraint that
narrows a recommendation (cheap, vegan, 便宜, 户外) when only one side has it.
A candidate that passes must also reach the similarity threshold of its language.

Everything here is pure Python over small in-module tables: no model, no I/O, a few tens of
microseconds per pair, so a batch of (question, candidate) pairs is checked in the same
worker thread as the store query (:func:`verify_batch`).
"""

# Chinese and typographic punctuation and numerals are what this module reads:
# ruff: noqa: RUF001

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

__all__ = ["Analysis", "Verdict", "analyse", "verify", "verify_batch"]

# ---- English ---------------------------------------------------------------------------

_EN_FUNCTION = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "done",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "mine",
        "myself",
        "we",
        "our",
        "ours",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "how",
        "why",
        "when",
        "where",
        "whether",
        "if",
        "can",
        "could",
        "would",
        "should",
        "shall",
        "will",
        "may",
        "might",
        "must",
        "please",
        "tell",
        "know",
        "want",
        "wonder",
        "wondering",
        "like",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "about",
        "by",
        "and",
        "or",
        "but",
        "so",
        "any",
        "some",
        "there",
        "here",
        "just",
        "really",
        "actually",
        "also",
        "exactly",
        "possible",
        "possibly",
        "way",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "guys",
        "ok",
        "okay",
        "kindly",
        "someone",
        "anyone",
        "something",
        "anything",
        "let",
        "us",
        "currently",
        "right",
        "now",
        "help",
        "able",
        "allowed",
        "need",
        "get",
        "go",
        "going",
        "out",
        "up",
        "as",
        "one's",
        "s",
        "t",
    ]
)
# Words that are dropped when they frame the question, not when they are its subject.
_EN_FRAMING = frozenset(
    [
        "explain",
        "describe",
        "tell",
        "give",
        "show",
        "say",
        "suggest",
        "recommend",
        "list",
        "share",
        "provide",
        "find",
    ]
)
_CONTRACTIONS = [
    (re.compile(r"\bcan't\b|\bcannot\b"), "can not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'(s|re|m|ll|ve|d)\b"), ""),
    # the same typed without the apostrophe: dont, isnt, whats, im
    (
        re.compile(
            r"\b(do|does|did|is|are|was|were|has|have|had|could|should|would|must|need)nt\b"
        ),
        r"\1 not",
    ),
    (re.compile(r"\bcant\b"), "can not"),
    (re.compile(r"\bwont\b"), "will not"),
    (re.compile(r"\b(what|how|where|who|that|there|here)s\b"), r"\1"),
    (re.compile(r"\bim\b|\bive\b"), "i"),
    (re.compile(r"\byoure\b"), "you"),
    (re.compile(r"\btheyre\b"), "they"),
]
_EN_PHRASES = [
    # (pattern, replacement) on lower-cased text, longest first where they overlap.
    (r"\bturn(ing|s|ed)? on\b|\bswitch(es|ed|ing)? on\b|\bactivate[sd]?\b", " enable "),
    (r"\bturn(ing|s|ed)? off\b|\bswitch(es|ed|ing)? off\b|\bdeactivate[sd]?\b", " disable "),
    (r"\blog(ging|s|ged)? ?in(to)?\b|\bsign(ing|s|ed)? ?in(to)?\b|\blogin\b", " login "),
    (r"\blog(ging|s|ged)? ?out\b|\bsign(ing|s|ed)? ?out\b|\blogout\b", " logout "),
    (r"\bsign(ing|s|ed)? ?up\b|\bregister\b", " signup "),
    (r"\bset(ting|s)? ?up\b", " setup "),
    (r"\bfree(s|d|ing)? up\b", " clear "),
    (r"\bfor free\b|\bfree(?= (?!of\b)[a-z])", " gratis "),
    (r"\bget rid of\b|\bdo away with\b", " remove "),
    (r"\bfind out\b|\blook up\b", " find "),
    (r"\bmake sure\b", " ensure "),
    (r"\bcome with\b|\binclude[sd]?\b", " include "),
    (r"\bhow long\b|\bhow much time\b", " duration "),
    (
        r"\bhow (many|much) (minutes|hours|days|weeks|months|years)\b(?=.*\b(take|takes|wait|last|lasts)\b)",
        " duration ",
    ),
    (r"\bhow many (minute|hour|day|week|month|year)s\b", r" duration \1s "),
    (r"\bhow many\b|\bhow much\b|\bnumber of\b|\bamount of\b", " quantity "),
    (r"\bwhat is the height of\b|\bhow tall\b|\bhow high\b", " height "),
    (r"\bwhat is the distance\b|\bhow far\b", " distance "),
    (r"\bwho wrote\b|\bwritten by\b|\bwho is the author\b", " author "),
    (r"\bwho painted\b|\bpainted by\b", " painter "),
    (r"\bwho invented\b|\binvented by\b|\binventor\b", " inventor "),
    (r"\bwho discovered\b|\bdiscovered by\b|\bdiscoverer\b", " discoverer "),
    (r"\bin what year\b|\bwhat year\b|\bwhich year\b", " when "),
    (r"\bwhat is the meaning of\b", " "),
    (r"\bmeans?(?=\s*[?.!]*\s*$)", " "),
    (r"\bmost recent\b|\blatest\b", " last "),
    (
        r"\bhow (many|much) (minutes|hours|days|weeks|months|years)\b(?=.*\b(take|takes|wait|last|lasts)\b)",
        " duration ",
    ),
    (r"\bhow (do|does|can|should) (i|you|we|one) say\b", " translate "),
    (r"\bin simple terms\b|\bsimply\b|\bin plain (english|words)\b", " simple "),
    (r"\bsci-?fi\b", " science fiction "),
    (r"\bwi-?fi\b", " wifi "),
    (r"\be-?mail\b", " email "),
    (r"\bon-?line\b", " online "),
    (r"\bmulti(ple)?\b|\bmore than one\b|\bseveral\b", " multiple "),
    (r"\bper day\b|\ba day\b|\beach day\b|\bdaily\b", " daily "),
    (r"\bper week\b|\ba week\b|\beach week\b|\bweekly\b", " weekly "),
    (r"\bper month\b|\ba month\b|\beach month\b|\bmonthly\b", " monthly "),
    (r"\bper year\b|\ba year\b|\beach year\b|\byearly\b|\bannual(ly)?\b", " yearly "),
    (r"\beach night\b|\bper night\b|\bnightly\b", " daily "),
    (r"\bto the power of\b|\braised to\b|\^", " pow "),
    (r"\bmultiplied by\b|\btimes\b|[×*]", " mul "),
    (r"\bdivided by\b|[÷]|(?<=\d) ?/ ?(?=\d)", " div "),
    (r"\bplus\b|\+", " add "),
    (r"\bminus\b|(?<=\d) ?- ?(?=\d)", " sub "),
    (r"(?<=\d)!", " factorial "),
    (r"\bequals?\b|\bequal to\b|=", " eq "),
    (r"%|\bper ?cent\b", " percent "),
    (r"°\s?f\b|\bdegrees? fahrenheit\b", " fahrenheit "),
    (r"°\s?c\b|\bdegrees? celsius\b|\bcentigrade\b", " celsius "),
    (r"\(", " lparen "),
]
_EN_PHRASES_RE = [(re.compile(p), r) for p, r in _EN_PHRASES]
# Words that mean the same in a question, by stem (see _stem). One group, one token.
_EN_SYNONYMS = [
    "chang updat modify edit alter amend switch",
    "delet remov eras",
    "buy purchas",
    "begin start launch",
    "end finish",
    "stop halt",
    "exit quit",
    "big larg huge",
    "small littl tiny",
    "fast quick speedy rapid",
    "contact reach",
    "help assist support",
    "show display",
    "photo pictur imag",
    "movie film",
    "car automobil",
    "recover restor retriev",
    "cancel terminat",
    "receiv obtain",
    "phone telephon",
    "author writer wrote",
    "make creat build",
    "error bug",
    "choos pick select",
    "correct right",
    "problem issue",
    "sofa couch",
    "fall autumn",
    "shop store",
    "cost price",
    "customer client",
    "cloth clothing",
    "kid child children",
    "doctor physician",
    "ill sick",
    "job work",
    "travel trip",
    "holiday vacation",
    "luggag baggag",
    "carry-on hand",
    "flight fly plane",
    "movi film",
    "center centr",
    "color colour",
    "realiz realis",
    "organiz organis",
    "summariz summaris summary",
    "optimiz optimis",
    "deduplicat duplicat",
    "revert undo",
    "prevent avoid",
    "tip advic idea way",
    "swap exchang",
    "overview summary",
    "main major primary",
    "famou known",
    "reason caus why",
    "benefit good",
    "bad unhealthy harmful",
    "translat say",
    "writ compos",
    "dict dictionary",
    "js javascript",
    "py python",
    "db databas",
    "repo repository",
    "app application",
    "directory folder",
    "config configuration",
    "func function",
    "doc document documentation",
    "ml milliliter millilitre",
    "l liter litre",
    "km kilometer kilometre",
    "m meter metre",
    "cm centimeter centimetre",
    "mm millimeter millimetre",
    "kg kilogram kilo",
    "g gram",
    "lb pound",
    "oz ounce",
    "mi mile",
    "ft foot feet",
    "in inch",
    "tsp teaspoon",
    "tbsp tablespoon",
    "hr hour",
    "min minut",
    "sec second",
    "mph mile-per-hour",
    "kb kilobyte",
    "mb megabyte",
    "gb gigabyte",
    "tb terabyte",
    "usd dollar",
    "eur euro",
    "2fa two-factor",
    "us american usa",
    "uk british",
    "ai artificial-intelligence",
    "ocean sea",
    "world earth planet globe",
    "eat meal",
    "spell spelling",
    "kill terminat",
    "format pretty-print prettify",
    "concatenat join combin",
    "deliver ship",
    "abroad internationally international other-countri",
]
# Pairs of words (by stem) whose swap turns a question into another one.
_EN_ANTONYMS = [
    ("enabl", "disabl"), ("login", "logout"), ("buy", "sell"), ("increas", "decreas"),
    ("rais", "lower"), ("gain", "lose"), ("gain", "loss"), ("add", "remov"), ("add", "delet"),
    ("add", "sub"), ("mul", "div"), ("push", "pull"), ("upload", "download"),
    ("import", "export"), ("encrypt", "decrypt"), ("encod", "decod"), ("compress", "extract"),
    ("compress", "decompress"), ("zip", "unzip"), ("install", "uninstall"),
    ("start", "stop"), ("begin", "stop"), ("open", "clos"), ("lock", "unlock"),
    ("block", "unblock"), ("mute", "unmute"), ("follow", "unfollow"), ("pause", "resum"),
    ("upgrad", "downgrad"), ("subscrib", "unsubscrib"), ("accept", "reject"),
    ("accept", "declin"), ("grant", "revok"), ("show", "hide"), ("hid", "show"),
    ("expand", "collaps"), ("mount", "unmount"), ("stage", "unstage"), ("archiv", "unarchiv"),
    ("connect", "disconnect"), ("join", "leav"), ("enter", "leav"), ("enter", "exit"),
    ("board", "get"), ("rent", "buy"), ("sav", "delet"), ("rise", "fall"), ("up", "down"),
    ("float", "sink"), ("asleep", "wake"), ("sleep", "wake"), ("speed", "slow"),
    ("fast", "slow"), ("hot", "cold"), ("high", "low"), ("max", "min"), ("maximum", "minimum"),
    ("first", "last"), ("ascend", "descend"), ("left", "right"), ("shallow", "deep"),
    ("new", "refurbish"), ("new", "used"), ("new", "old"), ("larg", "small"), ("big", "small"),
    ("long", "short"), ("easy", "hard"), ("beginner", "advanced"), ("simple", "detail"),
    ("even", "odd"), ("north", "south"), ("east", "west"), ("northernmost", "southernmost"),
    ("highest", "lowest"), ("largest", "smallest"), ("biggest", "smallest"),
    ("longest", "shortest"), ("tallest", "shortest"), ("cheapest", "expensive"),
    ("early", "late"), ("befor", "after"), ("within", "after"), ("allow", "forbid"),
    ("allow", "ban"), ("open", "closed"), ("win", "lose"), ("pass", "fail"),
    ("summer", "winter"), ("spring", "autumn"), ("ascending", "descending"),
    ("serializ", "deserializ"), ("seri", "deseri"), ("check-in", "check-out"),
    ("arriv", "depart"), ("inbound", "outbound"), ("income", "expens"),
    ("credit", "debit"), ("deposit", "withdraw"), ("lend", "borrow"), ("send", "receiv"),
    ("begin", "end"), ("start", "end"), ("mean", "median"), ("averag", "median"),
    ("time", "space"), ("sum", "product"), ("area", "perimeter"), ("gcd", "lcm"),
    ("shallow", "deep"), ("vegan", "vegetarian"), ("free", "paid"), ("public", "privat"),
    ("include", "exclude"), ("inhale", "exhale"), ("charge", "discharge"), ("freeze", "thaw"),
    ("heat", "cool"), ("warm", "cool"), ("wet", "dry"), ("hire", "fire"), ("attach", "detach"),
    ("allow", "deny"), ("approve", "reject"), ("confirm", "cancel"), ("maximize", "minimize"),
    ("above", "below"), ("inside", "outside"), ("upper", "lower"), ("uppercase", "lowercase"),
    ("over", "under"), ("overweight", "underweight"), ("positive", "negative"),
    ("true", "false"), ("success", "failure"), ("succeed", "fail"), ("online", "offline"),
    ("sync", "async"), ("synchronous", "asynchronous"), ("client", "server"),
    ("frontend", "backend"), ("input", "output"), ("read", "write"), ("get", "set"),
    ("request", "response"), ("wide", "narrow"), ("thick", "thin"), ("heavy", "light"),
    ("strong", "weak"), ("rich", "poor"), ("cheap", "expensive"), ("happy", "sad"),
    ("love", "hate"), ("like", "dislike"), ("agree", "disagree"), ("legal", "illegal"),
    ("morning", "evening"), ("day", "night"), ("sunrise", "sunset"), ("wired", "wireless"),
    ("eat", "avoid"), ("take", "avoid"), ("use", "avoid"), ("do", "avoid"), ("drink", "avoid"),
    ("allow", "prohibit"), ("permit", "forbid"), ("accept", "refus"), ("win", "loss"),
    ("profit", "loss"), ("buy", "return"), ("import", "export"), ("birth", "death"),
    ("born", "died"), ("arriv", "leav"), ("come", "go"), ("bring", "send"), ("give", "take"),
    ("lend", "repay"), ("borrow", "return"), ("deposit", "withdrawal"), ("attack", "defend"),
    ("forward", "backward"), ("front", "back"), ("top", "bottom"), ("inner", "outer"),
    ("minor", "major"), ("junior", "senior"), ("entry", "exit"), ("plus", "minus"),
    ("multiply", "divide"), ("numerator", "denominator"), ("horizontal", "vertical"),
    ("row", "column"), ("prefix", "suffix"), ("before", "after"), ("ascend", "descend"),
    ("encrypt", "hash"), ("merge", "split"), ("join", "split"), ("append", "prepend"),
    ("push", "pop"), ("enqueue", "dequeue"), ("parent", "child"), ("local", "remote"),
    ("local", "global"), ("static", "dynamic"), ("mutable", "immutable"), ("strict", "loose"),
    ("benefit", "bad"), ("benefit", "wors"), ("better", "wors"), ("improv", "wors"),
    ("male", "female"), ("men", "women"), ("man", "woman"), ("boy", "girl"),
    ("minifi", "unminifi"), ("mini", "unmini"), ("hide", "unhide"), ("share", "unshare"),
]  # fmt: skip
_EN_TIME = frozenset(
    [
        "today",
        "tonight",
        "tomorrow",
        "yesterday",
        "now",
        "currently",
        "current",
        "latest",
        "recent",
        "recently",
        "previous",
        "last",
        "next",
        "this",
        "upcoming",
        "past",
        "ago",
        "later",
        "earlier",
        "soon",
        "morning",
        "afternoon",
        "evening",
        "night",
        "weekend",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "spring",
        "summer",
        "autumn",
        "winter",
    ]
)
_EN_AUDIENCE = frozenset(
    [
        "kid",
        "child",
        "children",
        "toddler",
        "baby",
        "babies",
        "infant",
        "teen",
        "teenager",
        "adult",
        "senior",
        "elderly",
        "grandmother",
        "grandfather",
        "grandma",
        "grandpa",
        "beginner",
        "novice",
        "expert",
        "professional",
        "advanced",
        "intermediate",
        "student",
        "phd",
        "engineer",
        "developer",
        "scientist",
        "physicist",
        "doctor",
        "women",
        "woman",
        "men",
        "man",
        "girlfriend",
        "boyfriend",
        "boss",
        "wife",
        "husband",
        "mom",
        "dad",
        "parent",
        "couple",
        "son",
        "daughter",
        "friend",
        "brother",
        "sister",
        "family",
        "coworker",
        "colleague",
        "employee",
        "manager",
        "landlord",
        "tenant",
        "partner",
        "customer",
        "patient",
        "pregnant",
        "diabetic",
        "puppy",
        "kitten",
        "formal",
        "casual",
        "funny",
        "serious",
        "short",
        "brief",
        "long",
        "detailed",
        "detail",
        "simple",
        "rigorous",
        "sentence",
        "essay",
        "word",
        "paragraph",
    ]
)
_EN_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "nowhere",
        "neither",
        "nor",
        "without",
        "cannot",
        "except",
        "excluding",
        "unless",
        "unsafe",
        "non",
    ]
)
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 10**6, "billion": 10**9, "dozen": 12, "twice": 2, "once": 1,
    "single": 1, "half": 0.5, "squared": 2, "cubed": 3,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip
_EN_WORD = re.compile(r"\d+(?:[.,]\d+)*[a-z]*|[a-z][a-z0-9]*(?:[-'][a-z0-9]+)*|[+#]+")


_VOWEL = re.compile("[aeiouy]")


def _stem(word: str) -> str:
    """A light stemmer: plurals, -ing, -ed, -ly, a final e and a doubled consonant."""
    if len(word) <= 3 or not word.isalpha():
        return word
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5 and _VOWEL.search(w[:-3]):
        w = w[:-3]
    elif (w.endswith("ed") and len(w) > 4 and not w.endswith("eed") and _VOWEL.search(w[:-2])) or (
        w.endswith("ly") and len(w) > 5
    ):
        w = w[:-2]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiousl":
        w = w[:-1]
    return w


def _groups(lines: list[str]) -> dict[str, str]:
    canon: dict[str, str] = {}
    for line in lines:
        words = line.split()
        head = _stem(words[0])
        for word in words:
            canon[_stem(word)] = head
            canon[word] = head
    return canon


_EN_CANON = _groups(_EN_SYNONYMS)


def _head(word: str) -> str:
    stem = _stem(word)
    return _EN_CANON.get(word) or _EN_CANON.get(stem) or stem


def _forms(word: str) -> set[str]:
    return {word, _head(word), _EN_CANON.get(word, word)}


# Words that move a quantity up and words that move it down: any of one against any of the
# other is an opposite ("increase my limit" / "lower my limit").
_EN_UP = ("increas", "rais", "boost", "grow", "extend", "expand", "gain", "higher", "improv")
_EN_DOWN = ("decreas", "lower", "reduc", "shrink", "shorten", "lose", "loss", "worsen")
_EN_OPPOSITE = {
    frozenset((x, y))
    for a, b in [*_EN_ANTONYMS, *((u, d) for u in _EN_UP for d in _EN_DOWN)]
    for x in _forms(a)
    for y in _forms(b)
    if x != y
}
_EN_ANTONYM_WORDS = frozenset(w for pair in _EN_OPPOSITE for w in pair)
_EN_TIME_STEMS = frozenset(_stem(w) for w in _EN_TIME) | _EN_TIME
_EN_AUDIENCE_STEMS = frozenset(_head(w) for w in _EN_AUDIENCE)
# Units: a question about grams is not one about ounces.
_EN_UNITS = frozenset(
    _head(w)
    for w in [
        "mm",
        "cm",
        "m",
        "km",
        "mi",
        "ft",
        "in",
        "yd",
        "inch",
        "inches",
        "foot",
        "feet",
        "yard",
        "mile",
        "meter",
        "kilometer",
        "centimeter",
        "millimeter",
        "g",
        "kg",
        "gram",
        "kilogram",
        "lb",
        "pound",
        "oz",
        "ounce",
        "ton",
        "tonne",
        "stone",
        "l",
        "ml",
        "liter",
        "gallon",
        "quart",
        "pint",
        "cup",
        "tsp",
        "tbsp",
        "teaspoon",
        "tablespoon",
        "fahrenheit",
        "celsius",
        "kelvin",
        "sec",
        "second",
        "min",
        "minute",
        "hr",
        "hour",
        "day",
        "week",
        "month",
        "year",
        "decade",
        "century",
        "byte",
        "kb",
        "mb",
        "gb",
        "tb",
        "kilobyte",
        "megabyte",
        "gigabyte",
        "terabyte",
        "bit",
        "mph",
        "kmh",
        "usd",
        "dollar",
        "eur",
        "euro",
        "yen",
        "yuan",
        "rmb",
        "gbp",
        "percent",
        "watt",
        "volt",
        "calorie",
        "joule",
        "acre",
        "hectare",
    ]
)
# Words that change a question whenever one side has them and the other does not.
_EN_CRITICAL = frozenset(
    _head(w)
    for w in [
        "down",
        "lparen",
        "only",
        "except",
        "more",
        "less",
        "most",
        "least",
        "fewer",
        "extra",
        "per",
        "total",
        "net",
        "gross",
        "average",
        "median",
        "mode",
        "max",
        "maximum",
        "minimum",
        # constraints that narrow a recommendation to other answers: price, diet, kind,
        # place, season
        "cheap",
        "cheapest",
        "budget",
        "affordable",
        "inexpensive",
        "expensive",
        "luxury",
        "premium",
        "paid",
        "organic",
        "vegan",
        "vegetarian",
        "keto",
        "halal",
        "kosher",
        "lactose",
        "sugarless",
        "secondhand",
        "refurbished",
        "electric",
        "hybrid",
        "diesel",
        "manual",
        "automatic",
        "wireless",
        "portable",
        "waterproof",
        "indoor",
        "outdoor",
        "rainy",
        "romantic",
        "solo",
        "alone",
        "nearby",
        "gratis",
        # to avoid something is not to do it
        "avoid",
        "prevent",
    ]
)
_OPPOSITE_PREFIXES = ("un", "dis", "de", "de-", "non", "in", "im", "il", "ir", "re", "anti", "mis")

# ---- Chinese ---------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Phrases rewritten before characters are compared (longest first). An empty replacement
# drops a question or function phrase; a "<...>" token stands for one meaning.
_ZH_PHRASES = {
    # question frames and politeness
    "请问一下": "", "请问": "", "麻烦问一下": "", "麻烦": "", "你好": "", "您好": "",
    "我想知道": "", "想知道": "", "我想问": "", "问一下": "", "告诉我": "", "帮我": "",
    "给我": "", "能不能": "", "可不可以": "", "可以不可以": "", "能否": "", "是不是": "",
    # how many minutes / hours / days asks how long: the unit stays, the question is 多久
    "几分钟": "<多久>分钟", "多少分钟": "<多久>分钟", "几个小时": "<多久>小时",
    "几小时": "<多久>小时", "多少小时": "<多久>小时", "多少个小时": "<多久>小时",
    "几天": "<多久>天", "多少天": "<多久>天", "几周": "<多久>周", "多少周": "<多久>周",
    "几个星期": "<多久>周", "几个月": "<多久>月", "多少个月": "<多久>月", "几年": "<多久>年",
    "多少年": "<多久>年",
    "咋整": "<处理>", "咋办": "<处理>", "怎么整": "<处理>", "咋弄": "<处理>", "怎么弄": "",
    "是否": "", "什么叫": "", "叫什么是": "", "才能": "", "写法": "写", "做法": "做",
    "用法": "用", "有没有": "有", "会不会": "会", "要不要": "要", "需不需要": "需要",
    "该怎么": "", "要怎么": "", "应该怎么": "", "怎么样": "", "怎么": "", "怎样": "",
    "如何": "", "咋": "", "怎么办": "<处理>", "怎么处理": "<处理>", "如何处理": "<处理>",
    "怎么解决": "<处理>", "如何解决": "<处理>", "该怎么办": "<处理>", "怎么回事": "<原因>",
    "为什么": "<原因>", "为啥": "<原因>", "原因是什么": "<原因>", "的原因": "<原因>",
    "原因": "<原因>", "是什么意思": "", "什么意思": "", "的意思": "",
    "意思是": "", "代表什么": "", "意思": "", "是什么": "", "什么是": "", "是啥": "",
    "是多少": "<多少>", "多少": "<多少>", "几": "<多少>", "多大": "<多少>", "多高": "<高>",
    "高度": "<高>", "多长时间": "<多久>", "多少时间": "<多久>", "多久": "<多久>",
    "多长": "<长度>", "长度": "<长度>", "多远": "<距离>", "距离": "<距离>",
    "哪里": "<哪>", "哪儿": "<哪>", "哪个": "<哪>", "哪座": "<哪>", "哪一个": "<哪>",
    "哪家": "<哪>", "哪条": "<哪>", "哪部": "<哪>",
    "哪款": "<哪>", "哪位": "<哪>", "哪种": "<哪>", "哪": "", "谁": " @w ", "哪些": "",
    "什么时候": "<何时>", "何时": "<何时>", "哪天": "<何时>", "哪一天": "<何时>",
    "几月几号": "<何时>", "几月几日": "<何时>", "哪年": "<何年>", "哪一年": "<何年>",
    "什么": "", "啥": "",
    # words containing 不 / 没 / 无 / 非 / 别 that are no negation
    "不同": "<区别>", "区别": "<区别>", "差别": "<区别>", "差异": "<区别>", "不一样": "<区别>",
    "特别": "很", "非常": "很", "十分": "很", "超级": "很", "极其": "很", "比较": "",
    "分别": "", "别人": "<他人>", "类别": "<类>", "级别": "<级>", "告别": "<告别>",
    "沉没": "<沉>", "淹没": "<淹>", "出没": "<出没>", "没收": "<没收>", "埋没": "<埋没>",
    "无线": "<无线>", "无聊": "<无聊>", "无理由": "<无理由>", "不错": "<好>",
    "差不多": "<约>", "不少": "<多>", "不断": "<持续>", "没关系": "", "非洲": "<非洲>",
    # synonyms
    "修改": "<改>", "更改": "<改>", "更换": "<改>", "改变": "<改>", "变更": "<改>",
    "换成": "<改>", "改成": "<改>", "调整": "<改>", "编辑": "<改>", "切换": "<改>",
    "删除": "<删>", "删掉": "<删>", "删去": "<删>", "移除": "<删>", "去掉": "<删>",
    "去除": "<删>", "清除": "<删>", "开启": "<开>", "打开": "<开>", "开通": "<开>",
    "启用": "<开>", "启动": "<启动>", "关闭": "<关>", "关掉": "<关>", "停用": "<关>",
    "禁用": "<关>", "撤销": "<撤回>", "撤回": "<撤回>", "恢复": "<恢复>", "找回": "<恢复>",
    "还原": "<恢复>", "取回": "<恢复>", "联系": "<联系>", "联络": "<联系>",
    "客户服务": "<客服>", "客服": "<客服>", "手机号码": "<手机号>", "手机号": "<手机号>",
    "电话号码": "<电话>", "电话": "<电话>", "计算机": "<电脑>", "电脑": "<电脑>",
    "笔记本电脑": "<笔记本>", "笔记本": "<笔记本>", "账号": "<账户>", "账户": "<账户>",
    "帐号": "<账户>", "帐户": "<账户>", "密码": "<密码>", "收件地址": "<收货地址>",
    "收货地址": "<收货地址>", "邮费": "<运费>", "运费": "<运费>", "快递费": "<运费>",
    "支付": "<付>", "付款": "<付>", "付钱": "<付>", "扣费": "<扣钱>", "扣钱": "<扣钱>",
    "扣款": "<扣钱>", "到期": "<到期>", "过期": "<到期>", "价格": "<价>", "价钱": "<价>",
    "票价": "<价>", "多少钱": "<价>", "费用": "<价>", "花费": "<价>", "售价": "<价>",
    "钱": "<价>", "好处": "<好处>", "益处": "<好处>", "优点": "<好处>", "坏处": "<坏处>",
    "害处": "<坏处>", "有害": "<坏处>", "危害": "<坏处>", "症状": "<症状>", "表现": "<症状>",
    "头疼": "<头痛>", "头痛": "<头痛>", "嗓子疼": "<喉咙痛>", "嗓子痛": "<喉咙痛>",
    "喉咙疼": "<喉咙痛>", "喉咙痛": "<喉咙痛>", "发热": "<发烧>", "发烧": "<发烧>",
    "腹泻": "<拉肚子>", "拉肚子": "<拉肚子>", "睡不着觉": "<失眠>", "睡不着": "<失眠>",
    "失眠": "<失眠>", "脱发": "<掉头发>", "掉头发": "<掉头发>", "掉发": "<掉头发>",
    "心跳": "<心率>", "心率": "<心率>", "热量": "<卡路里>", "卡路里": "<卡路里>",
    "大卡": "<卡路里>", "首都": "<首都>", "国都": "<首都>", "城市": "<城>", "省份": "<省>",
    "一共": "", "总共": "", "共有": "有", "通常": "", "一般": "", "大概": "", "大约": "",
    "目前": "", "当前": "", "现在": "", "马上": "<立刻>", "立刻": "<立刻>",
    "立即": "<立刻>", "作者": "<作者>", "是谁写的": "<作者>", "谁写的": "<作者>",
    "谁画的": "<作者>", "作品": "<作品>", "代表作": "<作品>", "著名": "<有名>",
    "有名": "<有名>", "出名": "<有名>", "成就": "<贡献>", "贡献": "<贡献>", "发现": "<发现>",
    "推荐": "<推荐>", "建议": "<推荐>", "好看的": "<好看>", "好看": "<好看>",
    "有趣的": "<有趣>", "有趣": "<有趣>", "好玩": "<好玩>", "值得": "<值得>",
    "必去": "<值得>", "一定要": "<值得>", "必看": "<值得>", "名字": "<名字>", "起名": "<名字>",
    "取名": "<名字>", "起个名": "<名字>", "取个名": "<名字>", "小狗": "<狗>", "幼犬": "<狗>",
    "狗狗": "<狗>", "英语": "<英文>", "英文": "<英文>", "法语": "<法文>", "法文": "<法文>",
    "中文": "<中文>", "汉语": "<中文>", "美化": "<格式化>", "格式化": "<格式化>",
    "漂亮地": "<格式化>", "设置": "<设置>", "配置": "<设置>", "设定": "<设置>",
    "创建": "<建>", "新建": "<建>", "建立": "<建>", "生成": "<建>", "安装": "<安装>",
    "装": "<安装>", "卸载": "<卸载>", "查看": "<看>", "查询": "<看>", "查": "<看>",
    "看": "<看>", "显示": "<显示>", "展示": "<显示>", "获取": "<获取>", "得到": "<获取>",
    "拿到": "<获取>", "取得": "<获取>", "判断": "<判断>", "检查": "<判断>", "确认": "<判断>",
    "转换": "<转>", "转成": "<转>", "转为": "<转>", "转化": "<转>", "换算": "<转>",
    "化成": "<转>", "变成": "<转>", "转": "<转>", "等于": "", "相当于": "", "合多少": "<多少>",
    "需要": "<要>", "需": "<要>", "要": "<要>", "得要": "<要>", "应该": "", "应当": "",
    "可以": "", "能够": "", "能": "", "会": "", "允许": "", "支持": "", "方法": "", "办法": "",
    "方式": "", "步骤": "", "最佳": "<最好>", "最好": "<最好>", "最方便": "<最好>",
    "快递": "<快递>", "物流": "<快递>", "发货": "<发货>", "寄出": "<发货>",
    "到货": "<收货>", "收到货": "<收货>", "收货": "<收货>", "寄到": "<送到>",
    "送到": "<送到>", "配送到": "<送到>", "配送": "<送到>", "邮寄": "<送到>",
    "国外": "<国外>", "国际": "<国外>", "海外": "<国外>", "库存": "<有货>", "有货": "<有货>",
    "存货": "<有货>", "折扣": "<优惠>", "优惠": "<优惠>", "打折": "<优惠>",
    "政策": "<规则>", "规则": "<规则>", "规定": "<规则>", "流程": "<规则>",
    "入门": "<初级>", "新手": "<初级>", "初级": "<初级>", "高级": "<高级>", "进阶": "<高级>",
    "详细": "<详细>", "具体": "", "简单": "<简单>", "通俗": "<简单>", "简要": "<简单>",
    "概括": "<总结>", "总结": "<总结>", "概述": "<总结>", "讲讲": "<讲>", "讲一讲": "<讲>",
    "讲": "<讲>", "说说": "<讲>", "说一说": "<讲>", "说明": "<讲>", "解释": "<讲>",
    "介绍": "<讲>", "说": "<讲>", "谈谈": "<讲>", "描述": "<讲>", "阐述": "<讲>",
    "为什么会": "<原因>",
    "请": "", "一下": "", "一点": "", "一些": "", "几个": "", "一个": "", "一首": "",
    "一本": "", "一句": "", "一道": "", "一封": "", "一条": "", "一段": "", "一部": "",
    "一款": "", "一种": "", "一台": "", "一件": "", "这款": "", "这个": "", "这件": "",
    "这台": "", "这张": "", "这条": "", "这双": "", "这家": "", "那个": "", "某个": "",
    "你们的": "", "你们": "", "我们": "我", "我的": "我", "我家": "", "自己": "", "当前的": "",
    "的话": "", "以后": "后", "之后": "后", "以前": "前", "之前": "前", "以内": "内", "之内": "内", "饭前": "<饭前>", "饭后": "<饭后>",
    "登上": "登", "月球": "<月球>", "上月球": "<月球>", "好奇": "", "着急": "", "有必要": "<要>",
    "必要": "<要>", "使用": "用", "星期": "周", "礼拜": "周", "公斤": "<公斤>", "千克": "<公斤>",
    "公里": "<公里>", "千米": "<公里>", "素数": "<质数>", "质数": "<质数>", "乘以": "乘",
    "×": "乘", "加上": "加", "+": "加", "次方": "<幂>", "^": "<幂>",
    "根号": "<平方根>", "平方根": "<平方根>", "处理": "<处理>", "解决": "<处理>",
    "省": "<省>", "周一": "<周一>", "周二": "<周二>", "周三": "<周三>",
    "周四": "<周四>", "周五": "<周五>", "周六": "<周六>", "周日": "<周日>", "周天": "<周日>",
    "星期一": "<周一>", "星期二": "<周二>", "星期三": "<周三>", "星期四": "<周四>",
    "星期五": "<周五>", "星期六": "<周六>", "星期日": "<周日>", "星期天": "<周日>",
    "周末": "<周末>", "改": "<改>", "换": "<改>", "改善": "<提高>", "提高": "<提高>",
    "提升": "<提高>", "增强": "<提高>", "旅游": "<旅游>", "旅行": "<旅游>", "游玩": "<旅游>",
    "建造": "<建造>", "修建": "<建造>", "建成": "<建造>", "导致": "<导致>", "引起": "<导致>",
    "造成": "<导致>", "随身": "<随身>", "手提": "<随身>", "经常": "<经常>", "常常": "<经常>",
    "总是": "<经常>", "老是": "<经常>", "应用程序": "app", "应用": "app", "别的": "<其他>",
    "其他": "<其他>", "其它": "<其他>", "换货": "<换货>", "兑换": "<兑换>", "交换": "<交换>",
    "哪一": "", "码数": "<尺码>", "尺码": "<尺码>", "智能": "<智能>", "功能": "<功能>", "性能": "<性能>", "能力": "<能力>",
    "能量": "<能量>", "可能": "<可能>", "会员": "<会员>", "社会": "<社会>", "机会": "<机会>",
    "会议": "<会议>", "开会": "<会议>", "要求": "<要求>", "重要": "<重要>", "主要": "",
    "可爱": "<可爱>", "可乐": "<可乐>", "不能": "不", "能不": "不",
    "今天": "<今天>", "今日": "<今天>", "明天": "<明天>", "明日": "<明天>", "昨天": "<昨天>",
    "后天": "<后天>", "前天": "<前天>", "今晚": "<今晚>", "今天晚上": "<今晚>",
    "明早": "<明早>", "明天早上": "<明早>", "昨晚": "<昨晚>", "昨天晚上": "<昨晚>",
    "今天早上": "<今早>", "今早": "<今早>", "这周": "<本周>", "本周": "<本周>",
    "这个星期": "<本周>", "下周": "<下周>", "下个星期": "<下周>", "上周": "<上周>",
    "上个星期": "<上周>", "这个周末": "<本周末>", "本周末": "<本周末>", "这周末": "<本周末>",
    "下个周末": "<下周末>", "下周末": "<下周末>", "这个月": "<本月>", "本月": "<本月>",
    "下个月": "<下月>", "下月": "<下月>", "上个月": "<上月>", "上月": "<上月>",
    "今年": "<今年>", "明年": "<明年>", "去年": "<去年>", "上一任": "<上任>",
    "上任": "<上任>", "现任": "<现任>", "下次": "<下次>", "上次": "<上次>", "下一次": "<下次>",
    "上一次": "<上次>", "最新": "<最新>", "第一": "<第一>", "最后": "<最后>",
    "晚饭": "<晚饭>", "晚餐": "<晚饭>", "今晚晚饭": "<今晚><晚饭>",
    "睡眠": "<睡>", "睡觉": "<睡>", "入睡": "<入睡>", "睡": "<睡>", "多一些": "",
}  # fmt: skip
_ZH_SINGLE_MEANINGS = frozenset(
    v for v in _ZH_PHRASES.values() if re.fullmatch("<[\u4e00-\u9fff]>", v)
)
_ZH_PHRASES_RE = re.compile("|".join(sorted(map(re.escape, _ZH_PHRASES), key=len, reverse=True)))
_ZH_A_NOT_A = re.compile(r"([\u4e00-\u9fff])[不没]\1")
# Characters dropped after the phrases: particles, pronouns, measure words, framing.
_ZH_FUNCTION = frozenset(
    "的了吗呢吧啊呀么嘛是在和与及或也都就还又再很太更您你我他她它们这那些个"
    "么得地着过把被给让对于以之其而且所则并即该点呗哦嗯吖呐么儿有里中跟于在"
)
_ZH_NEGATIONS = frozenset("不没无非未别勿莫否免禁忌缺")
# Units: a question about 公里 is not one about 英里.
_ZH_UNITS = (
    "米",
    "公里",
    "英里",
    "英尺",
    "英寸",
    "尺",
    "寸",
    "克",
    "公斤",
    "斤",
    "磅",
    "盎司",
    "吨",
    "升",
    "加仑",
    "秒",
    "分钟",
    "小时",
    "天",
    "周",
    "月",
    "年",
    "元",
    "美元",
    "欧元",
    "英镑",
    "日元",
    "度",
    "卡路里",
    "gb",
    "mb",
    "tb",
    "kb",
    "<公斤>",
    "<公里>",
)
# Words whose presence on one side only turns an action into its reverse (取消关注, 反序列化).
_ZH_REVERSING = (
    "取消", "反序列", "反向", "解除", "解绑", "解冻", "解密", "解压", "解码", "解锁", "停用",
    "停止", "撤销", "撤回", "退出", "移出", "关闭", "禁用", "卸载", "拉黑",
)  # fmt: skip
# Meanings that frame a question without changing what it asks ("explain X" = "what is X").
_ZH_FRAMING = frozenset(["<讲>", "<原因>"])
_ZH_TIME = frozenset(
    [
        "<今天>",
        "<明天>",
        "<昨天>",
        "<后天>",
        "<前天>",
        "<今晚>",
        "<明早>",
        "<昨晚>",
        "<今早>",
        "<本周>",
        "<下周>",
        "<上周>",
        "<本周末>",
        "<下周末>",
        "<本月>",
        "<下月>",
        "<上月>",
        "<今年>",
        "<明年>",
        "<去年>",
        "<上任>",
        "<现任>",
        "<下次>",
        "<上次>",
        "<最新>",
        "<第一>",
        "<最后>",
        "<饭前>",
        "<饭后>",
        "<周一>",
        "<周二>",
        "<周三>",
        "<周四>",
        "<周五>",
        "<周六>",
        "<周日>",
        "<周末>",
    ]
)
_ZH_OPPOSITE = [
    ("开", "关"), ("<开>", "<关>"), ("<开>", "取消"), ("<启动>", "停止"), ("加", "解"),
    ("加密", "解密"), ("压缩", "解压"), ("绑定", "解绑"), ("冻结", "解冻"), ("升", "降"),
    ("增", "减"), ("增加", "减少"), ("提高", "降低"), ("上涨", "下跌"), ("涨", "跌"),
    ("买", "卖"), ("买入", "卖出"), ("推送", "拉取"), ("推", "拉"), ("上传", "下载"),
    ("导入", "导出"), ("入", "出"), ("<安装>", "<卸载>"), ("添加", "<删>"), ("加", "<删>"),
    ("登录", "退出"), ("登入", "登出"), ("订阅", "取消订阅"), ("关注", "取消关注"),
    ("暂停", "<恢复>"), ("拉黑", "移出黑名单"), ("显示", "隐藏"), ("<显示>", "隐藏"),
    ("编码", "解码"), ("序列化", "反序列化"), ("展开", "折叠"), ("挂载", "<卸载>"),
    ("暂存", "取消暂存"), ("通过", "拒绝"), ("授予", "收回"), ("开", "注销"),
    ("激活", "停用"), ("关联", "取消关联"), ("共享", "取消共享"), ("屏蔽", "取消屏蔽"),
    ("收藏", "取消收藏"), ("加入", "退出"), ("租", "买"), ("入睡", "提神"),
    ("浮", "沉"), ("上车", "出站"), ("上车", "下车"), ("入境", "出境"), ("入住", "退房"),
    ("值机", "退票"), ("预订", "取消"), ("相乘", "相除"), ("乘", "除"), ("加", "减"),
    ("向上", "向下"), ("增重", "减重"), ("胖", "瘦"), ("大", "小"), ("多", "少"),
    ("高", "低"), ("长", "短"), ("快", "慢"), ("早", "晚"), ("新", "旧"), ("全新", "翻新"),
    ("最大", "最小"), ("最高", "最低"), ("最北", "最南"), ("东", "西"), ("南", "北"),
    ("左", "右"), ("升序", "降序"), ("浅", "深"), ("第一", "最后"), ("饭前", "饭后"),
    ("<之前>", "<之后>"), ("<以内>", "<之后>"), ("提前", "逾期"), ("冬", "夏"), ("春", "秋"),
    ("偶", "奇"), ("男", "女"), ("已", "未"), ("能", "不能"), ("平均", "中位"),
    ("公约数", "公倍数"), ("体积", "表面积"), ("周长", "面积"), ("纯素", "素食"),
    ("退款", "换货"), ("提现", "充值"), ("按月", "按年"), ("入门", "高级"),
    ("<初级>", "<高级>"), ("<简单>", "<详细>"), ("<总结>", "<详细>"), ("正式", "随意"),
    ("加热", "冷却"), ("升温", "降温"), ("开机", "关机"), ("上线", "下线"), ("在线", "离线"),
    ("同步", "异步"), ("输入", "输出"), ("读", "写"), ("借", "还"), ("借入", "借出"),
    ("收入", "支出"), ("进口", "出口"), ("入口", "出口"), ("正", "负"), ("真", "假"),
    ("成功", "失败"), ("喜欢", "讨厌"), ("支持", "反对"), ("同意", "反对"), ("合法", "违法"),
    ("贵", "便宜"), ("宽", "窄"), ("厚", "薄"), ("重", "轻"), ("强", "弱"), ("冷", "热"),
    ("干", "湿"), ("白天", "晚上"), ("日出", "日落"), ("涨价", "降价"), ("充电", "放电"),
    ("进", "出"), ("收件", "发件"), ("寄", "收"), ("存", "取"), ("雇佣", "解雇"),
    ("批准", "拒绝"), ("包含", "排除"), ("上", "下"), ("前", "后"), ("内", "外"),
    ("内", "后"), ("里", "外"), ("吃", "忌"), ("能吃", "忌口"), ("允许", "禁止"),
    ("接受", "拒绝"), ("出生", "去世"), ("到达", "出发"), ("来", "去"), ("给", "拿"),
    ("存款", "取款"), ("攻", "守"), ("顶", "底"), ("主", "次"), ("横", "竖"), ("行", "列"),
    ("合并", "拆分"), ("父", "子"), ("本地", "远程"), ("静态", "动态"), ("优点", "缺点"),
    ("<好处>", "<坏处>"), ("好", "坏"), ("对", "错"), ("正确", "错误"), ("胜", "败"),
    ("赢", "输"), ("盈利", "亏损"), ("赚", "赔"), ("生", "死"), ("开始", "结束"),
    ("开始", "停止"), ("上班", "下班"), ("上课", "下课"), ("起飞", "降落"), ("出租", "租"),
]  # fmt: skip
_ZH_OPPOSITE_SET = {frozenset(pair) for pair in _ZH_OPPOSITE}
_ZH_OPPOSITE_PLAIN = frozenset(w for pair in _ZH_OPPOSITE for w in pair if not w.startswith("<"))
_ZH_OPPOSITE_BY_FIRST: dict[str, list[str]] = {}
for _word in sorted(_ZH_OPPOSITE_PLAIN):
    _ZH_OPPOSITE_BY_FIRST.setdefault(_word[0], []).append(_word)
_ZH_OPPOSITE_MEANINGS = frozenset(w for pair in _ZH_OPPOSITE for w in pair if w.startswith("<"))
_ZH_AUDIENCE = frozenset(
    [
        "儿童",
        "小孩",
        "孩子",
        "小朋友",
        "幼儿",
        "婴儿",
        "宝宝",
        "青少年",
        "成人",
        "成年人",
        "老人",
        "老年人",
        "学生",
        "小学生",
        "博士",
        "博士生",
        "专家",
        "新手",
        "工程师",
        "运维",
        "物理学家",
        "数学系",
        "女性",
        "男性",
        "女朋友",
        "男朋友",
        "老板",
        "情侣",
        "专业",
        "<初级>",
        "<高级>",
        "<简单>",
        "<详细>",
        "<总结>",
        "三句话",
        "一句话",
        "正式",
        "随意",
        "朋友圈",
        "朋友",
        "儿子",
        "女儿",
        "老公",
        "老婆",
        "丈夫",
        "妻子",
        "父母",
        "爸爸",
        "妈妈",
        "爸妈",
        "家人",
        "同事",
        "员工",
        "领导",
        "房东",
        "租客",
        "孕妇",
        "病人",
        "患者",
        "老年",
    ]
)
# Constraints that narrow a recommendation to other answers (price, diet, kind, place,
# season), refused when only one question has them.
_ZH_QUALIFIERS = (
    "便宜", "实惠", "平价", "性价比", "省钱", "贵的", "豪华", "奢华", "高端", "免费", "付费",
    "有机", "素食", "纯素", "无糖", "低糖", "低脂", "低卡", "清真", "二手", "翻新", "电动",
    "混动", "柴油", "手动", "自动挡", "无线", "便携", "防水", "室内", "户外", "下雨", "雨天",
    "冬天", "夏天", "冬季", "夏季", "浪漫", "一个人", "独自", "附近", "小户型", "预算",
)  # fmt: skip
_ZH_AUDIENCE_WORDS = (*(w for w in _ZH_AUDIENCE if not w.startswith("<")), "随便")
_CJK_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
    "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_CJK_MAGNITUDES = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8}
_CJK_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+")
_ZH_FRACTION = re.compile(
    r"([零〇一二两三四五六七八九十百\d]+)分之([零〇一二两三四五六七八九十百\d]+)"
)
_ZH_NUMBER_WORDS = {"一半": "0.5", "半": "0.5", "双": "2", "俩": "2", "仨": "3"}
# Number-like characters that belong to words, not to numbers.
_ZH_NOT_NUMBER = (
    "一样",
    "一起",
    "一直",
    "一定",
    "一般",
    "一切",
    "统一",
    "唯一",
    "万一",
    "千万",
    "一鸣惊人",
    "三角形",
    "四季",
    "万里",
    "十分",
    "星期一",
    "一型",
    "二型",
    "百分",
    "五星",
    "七天无理由",
    "一些",
    "一点",
    "一下",
    "一共",
    "第一",
    "哪一",
)

# ---- analysis --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Analysis:
    """A question reduced to what its answer depends on."""

    tokens: tuple[str, ...]
    """Content tokens in order: words (stems or synonym heads), ``#n`` numbers, ``!neg``
    negations, CJK characters and ``<...>`` Chinese meanings."""
    chinese: bool
    names: frozenset[str] = frozenset()
    """English words capitalised mid-sentence: a difference in these is a different name."""
    text: str = ""
    """The normalised text (Chinese: for words whose characters the tokens split)."""
    persons: frozenset[str] = frozenset()
    """Whose question it is: ``1`` (I, my, 我), ``2`` (you, your, 你), ``3`` (he, her, 他),
    counting neither a generic "how do you" nor a request to the assistant ("can you", 帮我)."""
    clauses: tuple[tuple[str, ...], ...] = ()
    """The content tokens of each condition clause ("if I forgot the passcode", 如果…)."""
    whole: bool = False
    """The question is about all of something (all, every, 所有, 批量), not one."""
    roles: tuple[str, ...] = ()
    """The tokens with who's who kept (``@1`` I, ``@2`` you, ``@3`` he/she, ``@w`` who), for
    "who viewed my profile" / "whose profile I viewed", 我把她 / 她把我."""
    asks: str = ""
    """What the answer is: ``when``, ``where``, ``who`` or ``why`` (English question words;
    Chinese meanings such as <何时> are tokens of their own)."""
    particles: tuple[str, ...] = ()
    """English direction particles (zoom in / zoom out, scroll up / down, check in / out)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's answer for one (question, candidate) pair."""

    hit: bool
    reason: str
    """``ok`` for a hit; otherwise why not, e.g. ``number: 2 vs 3``."""


def _num(value: float) -> str:
    return "#" + f"{value:g}"


_ZH_NOT_NUMBER_RE = re.compile("|".join(map(re.escape, _ZH_NOT_NUMBER)))


def _cjk_number(text: str) -> float:
    if all(ch in _CJK_DIGITS for ch in text):
        return float("".join(str(_CJK_DIGITS[ch]) for ch in text))
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
    return float(total + section + (digit or 0))


_EN_THEN = frozenset(["or", "and", "then", "before", "so", "but"])
_PIVOTS = {"to": "~to", "into": "~to", "from": "~from", "than": "~than", "vs": "~vs",
           "versus": "~vs", "over": "~over"}  # fmt: skip
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z0-9]*|\b[a-z]+[A-Z][a-zA-Z]*")


def _names(text: str) -> frozenset[str]:
    """Stems of words capitalised where a sentence does not start (names, products,
    places); none for text in capitals or Title Case, where capitals say nothing."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", text)
    if not words:
        return frozenset()
    inner = [w for w in words[1:] if w != "I"]
    capitalised = sum(1 for w in inner if w[0].isupper())
    if capitalised * 2 > max(len(inner), 1) or sum(
        1 for w in words if w.isupper() and len(w) > 1
    ) * 2 > len(words):
        return frozenset()
    found = set()
    for match in _CAPITALISED.finditer(text.strip()):
        word = match[0]
        if word == "I":
            continue
        found.add(_head(word.lower()))
    return frozenset(found)


def _english(text: str) -> list[str]:
    """Content tokens of lower-cased text whose contractions are expanded (:func:`analyse`)."""
    for pattern, replacement in _EN_PHRASES_RE:
        text = pattern.sub(replacement, text)
    out: list[str] = []
    words = _EN_WORD.findall(text)
    for index, word in enumerate(words):
        if word[0].isdigit():
            digits = re.match(r"[\d.,]+", word)
            assert digits is not None
            letters = word[digits.end() :]
            if letters and _head(letters) not in _EN_UNITS:
                out.append(word)  # 2fa, 4k, 3d: a word, not a number
                continue
            out.append(_num(float(digits[0].replace(",", "").rstrip(".,") or 0)))
            if letters:
                out.append(_head(letters))
            continue
        word = word.replace("'", "")
        if word in _PIVOTS:
            out.append(_PIVOTS[word])
            continue
        if word in _EN_NEGATIONS:
            out.append("!neg")
            continue
        if word in _NUMBER_WORDS:
            out.append(_num(_NUMBER_WORDS[word]))
            continue
        if word == "first" and (index + 1 == len(words) or words[index + 1] in _EN_THEN):
            continue  # "pay off my debt first": an adverb, no rank
        if word in _ORDINALS and not (index and words[index - 1][0].isdigit()):
            out.append(_num(_ORDINALS[word]))
            continue
        if word in _EN_PERSON_WORDS or word in ("who", "whose", "whom"):
            out.append("@" + _EN_PERSON_WORDS.get(word, "who")[0])
            continue
        if word in _EN_FUNCTION:
            continue
        if (
            word in _EN_FRAMING
            and not out
            and (index + 1 == len(words) or words[index + 1] in _EN_FUNCTION)
        ):
            continue
        negated = False
        if word.endswith("-free") and len(word) > 5:  # nut-free: "without nuts"
            word, negated = word[:-5], True
        if "-" in word and word not in _EN_CANON:
            joined = word.replace("-", "")
            word = joined if joined in _EN_CANON or _stem(joined) in _EN_CANON else word
        head = _head(word)
        if head in _EN_UNITS and out and out[-1] == "#1":
            out.pop()  # "one hour" is "an hour"
        out.append(head)
        if negated:
            out.append("!neg")
    return out


def _chinese_numbers(text: str) -> str:
    text = _ZH_FRACTION.sub(
        lambda m: (
            f" {_cjk_number(m[2]) if not m[2].isdigit() else m[2]}/"
            f"{_cjk_number(m[1]) if not m[1].isdigit() else m[1]} "
        ),
        text,
    )
    protected: list[str] = []

    def protect(match: re.Match[str]) -> str:
        protected.append(match[0])
        return f"\x00{len(protected) - 1}\x00"

    text = _ZH_NOT_NUMBER_RE.sub(protect, text)
    for word, value in _ZH_NUMBER_WORDS.items():
        text = text.replace(word, f" {value} ")

    def number(match: re.Match[str]) -> str:
        run = match[0]
        if len(run) == 1 and run in _CJK_MAGNITUDES and run != "十":
            return run
        return f" {_cjk_number(run):g} "

    text = _CJK_NUMBER.sub(number, text)
    return re.sub("\x00(\\d+)\x00", lambda m: protected[int(m[1])], text)


# 安全不, 去没: a 不 / 没 that ends the question asks it, like 吗
_ZH_TAG_QUESTION = re.compile(r"(?<=[\u4e00-\u9fff])(?:不|没有|没)(?=[？?！!。\s]*$)")
# 每天 / 一天, 每周 / 一周 ask the same ("how much water a day")
_ZH_EVERY = re.compile("每(?![\\d零〇一二两三四五六七八九十百千万])")
_ZH_ONE_MEASURE = re.compile("一(?=[个首本句条道封段部款种台件位张双])")


def _chinese(text: str) -> list[str]:
    text = _ZH_A_NOT_A.sub(r"\1", text)
    text = _ZH_TAG_QUESTION.sub("吗", text)
    text = _ZH_EVERY.sub("一", text)
    text = _ZH_ONE_MEASURE.sub("", text)
    text = _chinese_numbers(text)
    text = _ZH_PHRASES_RE.sub(lambda m: f" {_ZH_PHRASES[m[0]]} ", text)
    out: list[str] = []
    for match in re.finditer(
        r"<[^<>]+>|@w|\d+(?:\.\d+)?(?:/\d+)?|[a-z][a-z0-9]*|[\u3400-\u9fff]|[%+×÷^]", text
    ):
        token = match[0]
        if token[0].isdigit():
            if "/" in token:
                out.append("#" + token)
            else:
                out.append(_num(float(token)))
        elif token.isascii() and token[0].isalpha():
            stem = _stem(token)
            out.append(_EN_CANON.get(token) or _EN_CANON.get(stem) or stem)
        elif token in _ZH_NEGATIONS:
            out.append("!neg")
        elif token in _ZH_PERSON_CHARS:
            out.append("@" + _ZH_PERSON_CHARS[token])
        elif token in _ZH_FUNCTION or token in _ZH_FRAMING:
            continue
        elif token == "%":
            out.append("percent")
        else:
            out.append(token)
    # one meaning, however written: a single character that stands for a meaning of its
    # own (狗 and 狗狗 / 小狗 → <狗>), and a word said twice (看看, 试试) said once
    out = [f"<{t}>" if f"<{t}>" in _ZH_SINGLE_MEANINGS else t for t in out]
    return [t for i, t in enumerate(out) if not i or t != out[i - 1] or _is_number(t)]


# Who a question is about. A "you" that is generic ("how do you boil an egg") or that asks
# the assistant for something ("can you", "could you") says nothing about whose thing it is.
_EN_PERSON_WORDS = {
    # subject, object, possessive: "your name" vs "my name" differ, "how do I reach your
    # support" is one person asking about another's thing, which is no conflict.
    "i": "1s", "we": "1s", "me": "1o", "us": "1o", "my": "1p", "our": "1p", "mine": "1p",
    "ours": "1p", "myself": "1o", "you": "2s", "yourself": "2o", "your": "2p", "yours": "2p",
    "he": "3s", "she": "3s", "him": "3o", "his": "3p", "her": "3p", "hers": "3p",
}  # fmt: skip
_EN_PERSON = re.compile(r"\b(" + "|".join(_EN_PERSON_WORDS) + r")\b")
_EN_ASKING_YOU = re.compile(
    r"^\W*how\b[^?.!,;]*?\b(do|does|would|should|can|could|will|did) you\b"
    r"|^\W*(do|does|did) you\b|\b(can|could|would|will) you\b|\bthank you\b|\bare you able\b"
    r"|\b(you|one) (can|could|should|would|need|have to|must)\b|\bfor you\b(?=\s*[?.!]*$)"
)
_EN_OTHERS = re.compile(
    r"\b(?:someone|somebody|anyone|anybody) else(?:'?s)?\b|\bother people(?:'?s)?\b"
    r"|\b(?:another|other|a different) (?:person|user|people)(?:'?s)?\b"
)
_EN_AFTER_PREPOSITION = re.compile(
    r"\b(?:to|for|with|from|at|about|by|of|on|than|give|tell|ask|send)\s+$"
)
_ZH_ASKING = re.compile("帮我|给我|告诉我|教我|跟我|问你|请你|你能|你可以|你知道|你们|麻烦你|和我")
_ZH_OTHERS = re.compile("其他人|别人|他人|人家")
_ZH_PERSON_CHARS = {"我": "1", "咱": "1", "你": "2", "您": "2", "他": "3", "她": "3"}
# A condition narrows a question to a case: its clause runs to the end of the sentence or to
# a comma, and the other question must cover what it says.
_EN_CONDITION_WORDS = r"if|unless|except|without|whenever|in case|with|while|during|(?<=\w )when"
_EN_CONDITION = re.compile(rf"\b(?:{_EN_CONDITION_WORDS})\b\s*([^,.;?!]*)")
_ZH_CONDITION = re.compile(
    "(?:如果|要是|假如|假设|万一|若是|除非)([^，,。；;？?！!]*?)(?:的话|[，,。；;？?！!]|$)"
)
_PARTICLE_OPPOSITE = {
    "in": "out",
    "out": "in",
    "up": "down",
    "down": "up",
    "on": "off",
    "off": "on",
}
# phrasal verbs the phrase table already reads (turn on → enable, log in → login)
_EN_PHRASAL = re.compile(
    r"\b(?:turn|switch|log|sign|set)(?:s|ed|ing|ting|ged|ging)?\s+(?:on|off|in|out|up)\b"
)
_EN_PARTICLE = re.compile(r"\b(in|out|up|down|on|off)\b")
_EN_WHOLE = re.compile(
    r"\b(?:all|every|everything|entire|whole|bulk|batch)\b(?<!\bat all)"
    r"(?! (?:time|day|night|week|month|year|morning|now|the time|along|over|right)\b)"
)
_ZH_WHOLE = re.compile("所有|全部|批量|一次性|全都|统统|一键")


_EN_ASKS = re.compile(r"\b(when|where|who|whom|whose|why)\b")


_ZH_ASKS = (
    ("who", re.compile("谁")),
    ("when", re.compile("什么时候|何时|哪年|哪一年|哪天|哪一天|几月几[号日]|几点")),
    ("where", re.compile("哪里|哪儿|在哪|去哪|什么地方")),
    ("why", re.compile("为什么|为啥|怎么会|什么原因")),
)


def _asks(text: str, chinese: bool) -> str:
    """The first of when / where / who / why that opens a question (not "tell me when")."""
    if chinese:
        found = [kind for kind, pattern in _ZH_ASKS if pattern.search(text)]
        return found[0] if len(found) == 1 else ""
    match = _EN_ASKS.search(text)
    if not match or match.start() > 30:
        return ""
    return {"whom": "who", "whose": "who"}.get(match[1], match[1])


def _persons(text: str, chinese: bool) -> frozenset[str]:
    if chinese:
        text = _ZH_OTHERS.sub("他", _ZH_ASKING.sub(" ", text))
        return frozenset(_ZH_PERSON_CHARS[ch] for ch in text if ch in _ZH_PERSON_CHARS)
    text = _EN_OTHERS.sub(" his ", _EN_ASKING_YOU.sub(" ", text))
    found = set()
    for match in _EN_PERSON.finditer(text):
        person = _EN_PERSON_WORDS[match[1]]
        if match[1] == "you" and _EN_AFTER_PREPOSITION.search(text, 0, match.start()):
            person = "2o"
        found.add(person)
    return frozenset(found)


def _clauses(text: str, chinese: bool) -> tuple[tuple[str, ...], ...]:
    if chinese:
        found = [_chinese(m[1]) for m in _ZH_CONDITION.finditer(text)]
    else:
        found = [_english(m[1]) for m in _EN_CONDITION.finditer(text)]
    return tuple(tuple(t for t in clause if t[0] not in "~@") for clause in found if clause)


_LANGUAGE_NAMES_MAP = {"c++": " cplusplus ", "c#": " csharp ", "f#": " fsharp ", ".net": " dotnet "}
_LANGUAGE_NAMES = re.compile(r"(?i)\bc\+\+|\bc#|\bf#|\.net\b")


@lru_cache(maxsize=4096)
def analyse(text: str) -> Analysis:
    """Reduce a question to its content tokens (cached: stored questions come back)."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'")
    text = _LANGUAGE_NAMES.sub(lambda m: _LANGUAGE_NAMES_MAP[m[0].lower()], text)
    chinese = bool(_CJK.search(text))
    names = frozenset() if chinese else _names(text)
    text = text.lower()
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    roles = _chinese(text) if chinese else _english(text)
    tokens = [t for t in roles if t[0] != "@"]
    return Analysis(
        tokens=tuple(tokens),
        chinese=chinese,
        names=names,
        text=text if chinese else "",
        persons=_persons(text, chinese),
        clauses=_clauses(text, chinese),
        whole=bool((_ZH_WHOLE if chinese else _EN_WHOLE).search(text)),
        particles=() if chinese else tuple(_EN_PARTICLE.findall(_EN_PHRASAL.sub(" ", text))),
        roles=tuple(roles),
        asks=_asks(text, chinese),
    )


# ---- comparison ------------------------------------------------------------------------


def _is_number(token: str) -> bool:
    return token.startswith("#")


def _opposite(left: list[str], right: list[str], chinese: bool) -> str | None:
    """An antonym pair between the two sides' differing tokens, if any."""
    if chinese:
        # a meaning token (<多少>) is one word: its characters are no antonyms of their own
        present = [_zh_antonyms_in(side) for side in (left, right)]
        for a, b in _ZH_OPPOSITE:
            if (a in present[0] and b in present[1]) or (b in present[0] and a in present[1]):
                return f"{a}/{b}"
        return None
    for a in left:
        for b in right:
            if frozenset((a, b)) in _EN_OPPOSITE:
                return f"{a}/{b}"
            for x in _antonym_roots(a):  # thicken / thin: a longer form of a listed word
                for y in _antonym_roots(b):
                    if frozenset((x, y)) in _EN_OPPOSITE:
                        return f"{a}/{b}"
            for prefix in _OPPOSITE_PREFIXES:
                if (a == prefix + b or b == prefix + a) and min(len(a), len(b)) >= 3:
                    return f"{a}/{b}"
    return None


def _antonym_roots(word: str) -> list[str]:
    return [word[:k] for k in range(4, len(word) + 1) if word[:k] in _EN_ANTONYM_WORDS]


def _zh_antonyms_in(side: list[str]) -> set[str]:
    """The words of the Chinese antonym table that one side's differing tokens hold."""
    text = "".join(t for t in side if not t.startswith("<"))
    meanings = {t for t in side if t.startswith("<")}
    found = {w for ch in set(text) for w in _ZH_OPPOSITE_BY_FIRST.get(ch, ()) if w in text}
    found |= {t[1:-1] for t in meanings if t[1:-1] in _ZH_OPPOSITE_PLAIN}
    return found | (meanings & _ZH_OPPOSITE_MEANINGS)


def _show(tokens: list[str]) -> str:
    return ("" if tokens and tokens[0] and _CJK.match(tokens[0][0]) else " ").join(
        t.strip("<>") for t in tokens
    ) or "-"


def _swapped(a: list[str], b: list[str]) -> tuple[str, str] | None:
    """Two shared tokens in the opposite order around a shared pivot ("X to Y" / "Y to X",
    "A faster than B" / "B faster than A", 北京到上海 / 上海到北京); a token merely moved to
    the other end of the question ("permanently delete" / "delete ... permanently") is no
    swap."""
    first_a: dict[str, int] = {}
    for index, token in enumerate(a):
        first_a.setdefault(token, index)
    first_b: dict[str, int] = {}
    for index, token in enumerate(b):
        first_b.setdefault(token, index)
    shared = [t for t in first_a if t in first_b and a.count(t) == 1 and b.count(t) == 1]
    for i, x in enumerate(shared):
        for y in shared[i + 1 :]:
            ax, ay, bx, by = first_a[x], first_a[y], first_b[x], first_b[y]
            if (ax < ay) == (bx < by):
                continue
            between_a = set(a[min(ax, ay) + 1 : max(ax, ay)])
            between_b = set(b[min(bx, by) + 1 : max(bx, by)])
            if between_a & between_b:
                return x, y
    return None


def _difference(a: list[str], b: list[str]) -> tuple[list[str], list[str]]:
    """The tokens only ``a`` has and those only ``b`` has (as multisets, in order)."""
    rest_b = list(b)
    only_a = []
    for token in a:
        if token in rest_b:
            rest_b.remove(token)
        else:
            only_a.append(token)
    rest_a = list(a)
    only_b = []
    for token in b:
        if token in rest_a:
            rest_a.remove(token)
        else:
            only_b.append(token)
    return only_a, only_b


@lru_cache(maxsize=8192)
def compare(question: Analysis, stored: Analysis) -> tuple[str, list[str], list[str]]:
    """``ok`` or the reason a difference is not harmless, and the differing tokens (cached:
    the same question meets the same stored ones again)."""
    a, b = list(question.tokens), list(stored.tokens)
    if question.chinese != stored.chinese:
        return "language: one question is Chinese, the other is not", [], []
    person = _person_conflict(question.persons, stored.persons)
    if person:
        return f"person: {person}", [], []
    swapped = _swapped(list(question.roles), list(stored.roles))
    if swapped and "@w" in swapped and not all(t[0] == "@" for t in swapped):
        swapped = None  # 谁是X / X是谁: where "who" stands says nothing
    if not swapped and question.chinese:
        swapped = _person_turned(question.roles, stored.roles) or _person_turned(
            stored.roles, question.roles
        )
    if swapped:  # around a person only (the tokens alone showed no swap): who did what to whom
        return f"order: {_show(list(swapped))} swapped", [], []
    particle = _opposite_particles(question.particles, stored.particles)
    if particle:
        return f"opposite: {particle}", [], []
    if question.asks and stored.asks and question.asks != stored.asks:
        return f"asks: {question.asks} vs {stored.asks}", [], []
    if question.whole != stored.whole:
        return "scope: one question is about all of them", [], []
    if a == b:
        return "ok", [], []
    chinese = question.chinese
    numbers_a = [t for t in a if _is_number(t)]
    numbers_b = [t for t in b if _is_number(t)]
    if sorted(numbers_a) != sorted(numbers_b):
        return f"number: {_show(numbers_a)} vs {_show(numbers_b)}", [], []
    if numbers_a != numbers_b:
        return f"order: {_show(numbers_a)} vs {_show(numbers_b)}", [], []
    if a.count("!neg") != b.count("!neg"):
        return "negation: one question is negated", [], []
    versions = _versions(a, b)
    if versions:
        return f"number: {versions}", [], []
    condition = _uncovered_condition(question, b) or _uncovered_condition(stored, a)
    if condition:
        return f"condition: {_show(list(condition))}", [], []
    added = _added_clause(a, b, chinese)
    if added:
        return f"added: {_show(added)}", [], []
    if not chinese:
        units_a = [t for t in a if t in _EN_UNITS]
        units_b = [t for t in b if t in _EN_UNITS]
        if units_a != units_b and sorted(units_a) == sorted(units_b):
            return f"order: {_show(units_a)} vs {_show(units_b)}", [], []
    swapped = _swapped(a, b)
    if swapped:
        return f"order: {_show(list(swapped))} swapped", [], []
    left, right = _difference(a, b)
    left = [t for t in left if not t.startswith("~")]
    right = [t for t in right if not t.startswith("~")]
    times = [t for t in left + right if _time(t, chinese)]
    if times:
        return (
            f"time: {_show([t for t in left if _time(t, chinese)])} vs "
            f"{_show([t for t in right if _time(t, chinese)])}",
            left,
            right,
        )
    opposite = _opposite(left, right, chinese)
    if opposite:
        return f"opposite: {opposite}", left, right
    if _audience(left + right, chinese):
        return f"audience: {_show(left)} vs {_show(right)}", left, right
    if not chinese:
        units_left = [t for t in left if t in _EN_UNITS]
        units_right = [t for t in right if t in _EN_UNITS]
        asks_how_long = "duration" in a and "duration" in b
        if (units_left and units_right) or (
            (units_left or units_right) and not asks_how_long
        ):  # "how long" and "how many days ... how long": the unit names the answer's
            return f"unit: {_show(left)} vs {_show(right)}", left, right
        names = question.names | stored.names
        if any(t in names for t in left + right):
            return f"name: {_show(left)} vs {_show(right)}", left, right
        if any(t in _EN_CRITICAL for t in left + right):
            return f"qualifier: {_show(left)} vs {_show(right)}", left, right
    if chinese:
        joined = "".join(left + right)
        units = [u for u in _ZH_UNITS if u in joined]
        counted = any(_is_number(t) or t == "<多少>" for t in a + b)
        if units and counted:
            return f"unit: {_show(left)} vs {_show(right)}", left, right
        text_a, text_b = "".join(a), "".join(b)
        for word in _ZH_REVERSING:
            if text_a.count(word) != text_b.count(word):
                return f"opposite: {word}", left, right
        groups_q, groups_s = _zh_audience(question.text), _zh_audience(stored.text)
        if groups_q != groups_s:
            return f"audience: {_show(sorted(groups_q ^ groups_s))}", left, right
        for word in _ZH_QUALIFIERS:
            if (word in question.text) != (word in stored.text):
                return f"qualifier: {word}", left, right
    if left and right:
        if chinese:
            regions = [
                op
                for op in SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
                if op[0] != "equal"
            ]
            if len(regions) == 1 and min(len(left), len(right)) <= 3:
                return f"substitution: {_show(left)} vs {_show(right)}", left, right
            if len(regions) == 2 and all(
                op == "replace" and i2 - i1 <= 2 and j2 - j1 <= 2 for op, i1, i2, j1, j2 in regions
            ):  # two words each replaced by another: 字典…值 / 列表…长度
                return f"substitution: {_show(left)} vs {_show(right)}", left, right
            shared = len(a) + len(b) - len(left) - len(right)
            if shared < 0.5 * (len(a) + len(b)):
                return f"different: {_show(left)} vs {_show(right)}", left, right
            return f"reworded: {_show(left)} vs {_show(right)}", left, right
        regions = [
            op
            for op in SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
            if op[0] != "equal"
        ]
        if len(regions) > 1 and min(len(left), len(right)) >= 1 and len(left) + len(right) >= 4:
            return f"reworded: {_show(left)} vs {_show(right)}", left, right
        if len(left) == 1 and len(right) == 1:
            # One word for another, the rest the same: the commonest shape of two questions
            # that differ in meaning (reset / delete my API key, cats / dogs), and of many
            # paraphrases too (formula / calculate). It needs more similarity to be served.
            return f"replaced: {_show(left)} vs {_show(right)}", left, right
        return f"different: {_show(left)} vs {_show(right)}", left, right
    if left or right:
        return f"extra: {_show(left or right)}", left, right
    return "ok", left, right


def _versions(a: list[str], b: list[str]) -> str | None:
    """Two model or version names that differ only in their digits (ps4 / ps5, win10 /
    win11, iphone14 / iphone15)."""
    only_a, only_b = _difference(a, b)
    for x in only_a:
        if not any(ch.isdigit() for ch in x):
            continue
        plain_x = x.replace("-", "")
        for y in only_b:
            plain_y = y.replace("-", "")
            if (
                plain_x != plain_y
                and any(ch.isdigit() for ch in y)
                and _DIGITS.sub("#", plain_x) == _DIGITS.sub("#", plain_y)
            ):
                return f"{x} vs {y}"
    return None


_DIGITS = re.compile(r"\d+")


def _person_turned(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, str] | None:
    """A person and the word beside it in the other order (我把女朋友 / 女朋友把我: the
    particle between them is no content), while 我的订单 / …我的订单 keeps its word."""
    for person in {t for t in a if t[0] == "@" and t != "@w"}:
        if a.count(person) != 1 or b.count(person) != 1:
            continue
        i, j = a.index(person), b.index(person)
        after_a = a[i + 1] if i + 1 < len(a) else None
        before_b = b[j - 1] if j else None
        if after_a and before_b and after_a in b[:j] and before_b in a[i + 1 :]:
            return person, after_a
    return None


def _opposite_particles(a: tuple[str, ...], b: tuple[str, ...]) -> str | None:
    """A direction particle one question has where the other has its opposite."""
    only_a, only_b = _difference(list(a), list(b))
    for word in only_a:
        if _PARTICLE_OPPOSITE[word] in only_b:
            return f"{word}/{_PARTICLE_OPPOSITE[word]}"
    return None


def _person_conflict(a: frozenset[str], b: frozenset[str]) -> str | None:
    """ "Your name" vs "my name", "how old are you" vs "how old am I": the same role (subject,
    object, possessive; Chinese has one) held by different persons on the two sides."""
    whole_a, whole_b = {p[0] for p in a}, {p[0] for p in b}
    if whole_a and whole_b and "3" in whole_a ^ whole_b:  # someone else comes in
        return f"{'/'.join(sorted(whole_a))} vs {'/'.join(sorted(whole_b))}"
    for role in ("s", "o", "p", ""):
        left = {p[0] for p in a if p[1:] == role}
        right = {p[0] for p in b if p[1:] == role}
        if left and right and not left & right:
            return f"{'/'.join(sorted(left))} vs {'/'.join(sorted(right))}"
    return None


def _akin(a: str, b: str) -> bool:
    """Two forms of one word the stemmer left apart (died / die, taming / tame)."""
    if a == b:
        return True
    return len(a) >= 3 and len(b) >= 3 and a[:3] == b[:3] and (a.startswith(b) or b.startswith(a))


def _uncovered_condition(side: Analysis, other: list[str]) -> tuple[str, ...] | None:
    """A condition clause of ``side`` whose content the other question mostly lacks."""
    for clause in side.clauses:
        covered = sum(1 for t in clause if t in other or any(_akin(t, o) for o in other))
        if covered * 2 < len(clause):
            return clause
    return None


ADDED_MIN = {"en": 3, "zh": 3}
ADDED_OTHER = 0


def _added_clause(a: list[str], b: list[str], chinese: bool) -> list[str] | None:
    """Content only one question has, with (almost) nothing of the other's own in its place,
    and enough of it to be a clause of its own (a case, a constraint, an audience: "with bad
    knees", 肾不好的人, 忘了锁屏密码) rather than a rewording."""
    least = ADDED_MIN["zh" if chinese else "en"]
    left, right = _difference(a, b)
    left = [t for t in left if not t.startswith("~") and not any(_akin(t, o) for o in b)]
    right = [t for t in right if not t.startswith("~") and not any(_akin(t, o) for o in a)]
    for more, fewer in ((left, right), (right, left)):
        if len(more) >= least and len(fewer) <= ADDED_OTHER:
            return more
    return None


def _time(token: str, chinese: bool) -> bool:
    if chinese:
        return token in _ZH_TIME
    return token in _EN_TIME_STEMS


# Words for one audience (孩子 / 小孩, 老板 / 领导): a question for either asks for the same.
_ZH_AUDIENCE_GROUPS = {
    "小孩": "孩子", "小朋友": "孩子", "儿童": "孩子", "婴儿": "宝宝", "幼儿": "宝宝",
    "老年人": "老人", "老年": "老人", "成年人": "成人", "领导": "老板", "随便": "随意",
    "丈夫": "老公", "妻子": "老婆", "爸妈": "父母", "患者": "病人",
}  # fmt: skip


def _zh_audience(text: str) -> frozenset[str]:
    return frozenset(_ZH_AUDIENCE_GROUPS.get(w, w) for w in _ZH_AUDIENCE_WORDS if w in text)


def _audience(span: list[str], chinese: bool) -> bool:
    if chinese:  # the words are compared on the whole texts (compare); here the meanings
        return any(t in _ZH_AUDIENCE for t in span if t.startswith("<"))
    return any(t in _EN_AUDIENCE_STEMS for t in span)


# Similarity (MiniLM cosine) from which a candidate is served, by language and by what
# differs once both questions are in canonical form: nothing (``same``), words only one
# side has (``extra``), one word replaced by another (``replaced``), more words replaced
# (``different``). MiniLM reads most Chinese
# characters as unknown tokens, so for Chinese the comparison carries the decision (and a
# word replaced by another, not a synonym, is never served: None).
MIN_SIMILARITY = 0.45
"""The lowest threshold below: candidates under it are never fetched from the store."""
THRESHOLDS: dict[str, dict[str, float | None]] = {
    "en": {
        "same": 0.55,
        "empty": 0.85,
        "extra": 0.76,
        "replaced": 0.87,
        "different": 0.84,
        "reworded": 0.76,
    },
    "zh": {
        "same": 0.45,
        "empty": 0.85,
        "extra": 0.45,
        "replaced": None,
        "different": None,
        "reworded": 0.45,
    },
}


def verify(
    question: str,
    stored: str,
    similarity: float,
    thresholds: dict[str, dict[str, float | None]] | None = None,
) -> Verdict:
    """May the answer to ``stored`` serve ``question``? ``similarity`` is their cosine."""
    qa, sa = analyse(question), analyse(stored)
    reason, _, _ = compare(qa, sa)
    kind = reason.split(":", 1)[0]
    if kind not in ("ok", "extra", "replaced", "different", "reworded"):
        return Verdict(False, reason)
    if kind == "ok":
        kind = "same" if qa.tokens else "empty"
    floor = (thresholds or THRESHOLDS)["zh" if qa.chinese else "en"][kind]
    if floor is None:  # Chinese: a replaced word is never served (no names to tell by)
        return Verdict(False, reason)
    if similarity < floor:
        detail = "" if kind in ("same", "empty") else f" ({reason})"
        return Verdict(False, f"similarity: {similarity:.3f} < {floor:.2f}{detail}")
    return Verdict(True, "ok" if kind in ("same", "empty") else f"ok ({reason})")


def verify_batch(
    pairs: list[tuple[str, str, float]],
    thresholds: dict[str, dict[str, float | None]] | None = None,
) -> list[Verdict]:
    """:func:`verify` over (question, stored question, similarity) triples, in order."""
    return [verify(q, s, sim, thresholds) for q, s, sim in pairs]
