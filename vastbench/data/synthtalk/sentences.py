"""Built-in English sentence generator for SynthTalk.

``generate_sentences(n, seed)`` returns ``n`` grammatical English sentences of 5
to 12 words (about 2 to 4 s of speech at 160 words per minute), deterministic
from ``seed`` and independent of the platform (it uses ``random.Random``, whose
integer-seeded stream is stable across Python versions).

Sentences come from a dozen templates (statements, questions, a fronted time
phrase, a subordinate clause, an exclamation) filled from word banks. Variety and
phoneme coverage come from how the banks are drawn: each bank is a shuffled
*deck* dealt without replacement and reshuffled only when empty, and templates
are dealt the same way. In 50 sentences the small banks go round several times
and the largest (things, ~55 words) about once, and the banks were chosen so
that together they contain every phoneme eSpeak NG's en-us voice produces for
ordinary English, the rare ones with several carriers in different banks, e.g.
/ʒ/ (measure, garage, television, usual, beige), /ɔɪ/ (boy, coin, noisy,
enjoyed), /ʊ/ (book, wooden, pushed, sugar), /θ/ (Thursday, author, thirsty),
/ʊɹ/ (tourist, poor, curious), /aɪɚ/ (fire, tired, iron), syllabic /n̩/ after a
glottal stop (button, cotton, kitten, rotten), the flap (water, letter),
/əl/ (bottle, kettle), and the weak vowels of "roses" and "happy".
``COVERED_PHONEMES`` lists the stress-free eSpeak mnemonics that 50 sentences
cover (checked for seeds 0-39; the tests check a few); ``phoneme_coverage``
counts them. A request for more sentences extends a shorter one with the same
seed (the first ``n`` are the same), so clip sentences stay put.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable, Iterable

from vastbench.errors import VastbenchError

MIN_WORDS, MAX_WORDS = 5, 12

# The eSpeak en-us phonemes (mnemonics, stress marks stripped) that 50 generated
# sentences cover whatever the seed. Pauses are not phonemes of the text.
COVERED_PHONEMES: frozenset[str] = frozenset({
    # consonants; "t#" is the flap, "?" the glottal stop and "n-" the syllabic n of
    # "button", ";" the linking glide of "the apple"
    "p", "b", "t", "d", "k", "g", "f", "v", "T", "D", "s", "z", "S", "Z", "h", "tS", "dZ",
    "m", "n", "N", "l", "r", "w", "j", "t#", "?", "n-", ";",
    # vowels and diphthongs ("aa": bath, "O2": long, "O@": for, "o@": more, "i@3": near, "aI3": fire)
    "a", "aa", "a#", "A:", "A@", "0", "O:", "O2", "O@", "o@", "oU", "OI", "V", "E", "e@", "eI",
    "I", "I2", "I#", "i", "i:", "i@", "i@3", "U", "U@", "u:", "aI", "aI@", "aI3", "aU", "3", "3:",
    "@", "@2", "@L",
})

# ----------------------------------------------------------------------------- word banks
NAMES = ("Joseph", "Martha", "Julia", "Theodore", "Charlotte", "George", "Heather", "Vincent", "Lucy", "Oliver",
         "Sophie", "Hugo", "Rachel", "Timothy", "Nora", "Owen", "Zoe", "Gavin", "Ruth", "Jasper", "Ivy", "Arthur",
         "Maya", "Peter", "Claire", "Douglas", "Wendy", "Frank", "Roy", "Joyce", "Kathy", "Usha")
PEOPLE = ("teacher", "doctor", "farmer", "neighbor", "driver", "nurse", "boy", "girl", "woman", "judge", "author",
          "cook", "sailor", "pilot", "painter", "student", "lawyer", "baker", "gardener", "singer", "engineer",
          "mechanic", "tourist", "jeweler", "butcher", "plumber", "officer", "lifeguard", "father")
ADJECTIVES = ("quiet", "yellow", "heavy", "beautiful", "enormous", "tiny", "brown", "purple", "smooth", "wooden",
              "orange", "gentle", "thirsty", "noisy", "beige", "large", "cheerful", "shiny", "ancient", "clever",
              "royal", "careful", "curious", "hungry", "warm", "fresh", "dusty", "rough", "tired", "famous",
              "strange", "cozy", "poor", "usual", "pleasant", "lovely", "rotten", "serious", "pure")
THINGS = ("garage", "television", "treasure", "book", "cookie", "window", "chair", "kitchen", "bridge", "jacket",
          "engine", "towel", "coin", "toy", "bicycle", "umbrella", "picture", "letter", "bottle", "button",
          "ladder", "basket", "guitar", "puzzle", "violin", "mirror", "pillow", "sandwich", "kettle", "camera",
          "feather", "rabbit", "turtle", "pearl", "shovel", "hammer", "blanket", "drawer", "bucket", "cushion",
          "wallet", "necklace", "fire", "oyster", "sugar", "mountain", "water", "roses", "cotton", "kitten",
          "iron", "idea", "llama")
VERBS = (  # transitive (base, past)
    ("measure", "measured"), ("push", "pushed"), ("pull", "pulled"), ("find", "found"), ("buy", "bought"),
    ("carry", "carried"), ("paint", "painted"), ("wash", "washed"), ("fix", "fixed"), ("borrow", "borrowed"),
    ("open", "opened"), ("clean", "cleaned"), ("move", "moved"), ("choose", "chose"), ("enjoy", "enjoyed"),
    ("avoid", "avoided"), ("notice", "noticed"), ("watch", "watched"), ("check", "checked"),
    ("polish", "polished"), ("hide", "hid"), ("sell", "sold"), ("bring", "brought"), ("repair", "repaired"),
    ("examine", "examined"), ("describe", "described"), ("return", "returned"), ("wrap", "wrapped"),
    ("share", "shared"), ("touch", "touched"), ("throw", "threw"), ("catch", "caught"), ("lift", "lifted"),
    ("draw", "drew"), ("sketch", "sketched"), ("judge", "judged"), ("cook", "cooked"),
)
INTRANSITIVE = ("laughed", "waited", "arrived", "whispered", "sang", "slept", "jumped", "worked", "danced",
                "shouted", "smiled", "traveled", "wandered", "listened", "stayed", "rested", "hurried", "cheered")
PLACES = ("near the river", "in the garage", "behind the house", "under the bridge", "at the church",
          "beside the fountain", "on the mountain", "by the ocean", "in the village", "at the station",
          "inside the theater", "across the yard", "through the forest", "near the beach", "in the kitchen",
          "at the hospital", "on the boat", "in the north", "outside the school", "next to the zoo",
          "at the airport", "by the fire", "on the tower", "in the jungle", "near the factory")
TIMES = ("yesterday", "this morning", "last Thursday", "every evening", "on Sunday", "at noon", "in June",
         "after lunch", "before dawn", "last month", "tonight", "this afternoon", "in the autumn", "at midnight",
         "within an hour", "last year", "at eleven thirty", "on Wednesday")
ADVERBS = ("quickly", "slowly", "carefully", "quietly", "happily", "again", "together", "easily", "gently",
           "smoothly", "loudly", "early", "today", "anyway", "joyfully", "thoroughly")
FUTURE_TIMES = ("tomorrow", "tonight", "next week", "on Sunday", "after lunch", "this afternoon", "next Thursday",
                "later today", "in the morning", "before noon", "next autumn")
POSSESSIVES = ("the", "my", "our", "his", "her", "their", "this", "that")
AUXILIARIES = ("will", "should", "can", "might", "must")

_AN_EXCEPTIONS = {"usual", "useful", "university", "uniform", "unicorn", "european", "one"}
_AN_FORCED = {"hour", "honest", "heir"}


def _article(word: str) -> str:
    w = word.lower()
    if w in _AN_FORCED:
        return "an"
    return "an" if w[0] in "aeiou" and w not in _AN_EXCEPTIONS else "a"


class _Dealer:
    """Per-bank decks dealt without replacement, so every entry recurs evenly."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._decks: dict[int, list] = {}

    def deal(self, bank: tuple):
        deck = self._decks.get(id(bank))
        if not deck:
            deck = list(bank)
            self._rng.shuffle(deck)
            self._decks[id(bank)] = deck
        return deck.pop()

    def det(self) -> str:
        return self.deal(POSSESSIVES)

    def maybe(self, bank: tuple, p: float = 0.5) -> str:
        """' word' from ``bank`` with probability ``p``, else '' (optional modifiers)."""
        return f" {self.deal(bank)}" if self._rng.random() < p else ""

    def a_noun(self, adjective: bool = False) -> str:
        """'a wooden kettle' / 'an engine' / 'their mirror'."""
        noun = self.deal(THINGS)
        adjective = adjective or self._rng.random() < 0.4
        words = [self.deal(ADJECTIVES), noun] if adjective else [noun]
        if self._rng.random() < 0.35:
            return f"{_article(words[0])} {' '.join(words)}"
        return f"{self.det()} {' '.join(words)}"


# ----------------------------------------------------------------------------- templates
def _t_person_did_thing_place(d: _Dealer) -> str:
    return f"{d.det()} {d.deal(ADJECTIVES)} {d.deal(PEOPLE)} {d.deal(VERBS)[1]} {d.a_noun()} {d.deal(PLACES)}."


def _t_name_did_thing_time(d: _Dealer) -> str:
    return f"{d.deal(NAMES)}{d.maybe(ADVERBS, 0.3)} {d.deal(VERBS)[1]} {d.a_noun(adjective=True)} {d.deal(TIMES)}."


def _t_will(d: _Dealer) -> str:
    aux = d.deal(AUXILIARIES)
    return f"{d.det()} {d.deal(PEOPLE)} {aux} {d.deal(VERBS)[0]} {d.a_noun()} {d.deal(FUTURE_TIMES)}."


def _t_question_did(d: _Dealer) -> str:
    return f"Did {d.deal(NAMES)} {d.deal(VERBS)[0]} {d.a_noun()} {d.deal(PLACES)}{d.maybe(TIMES)}?"


def _t_two_names(d: _Dealer) -> str:
    first, second = d.deal(NAMES), d.deal(NAMES)
    return f"{first} and {second} {d.deal(INTRANSITIVE)} {d.deal(PLACES)} {d.deal(TIMES)}."


def _t_fronted_time(d: _Dealer) -> str:
    return (f"{d.deal(TIMES)}, {d.det()}{d.maybe(ADJECTIVES)} {d.deal(PEOPLE)} {d.deal(INTRANSITIVE)} "
            f"{d.deal(ADVERBS)} {d.deal(PLACES)}.")


def _t_please(d: _Dealer) -> str:
    return f"Please {d.deal(VERBS)[0]} {d.a_noun(adjective=True)} {d.deal(PLACES)}."


def _t_i_think(d: _Dealer) -> str:
    return f"I think {d.det()} {d.deal(PEOPLE)} {d.deal(VERBS)[1]} {d.a_noun()} {d.deal(PLACES)}."


def _t_was(d: _Dealer) -> str:
    first, second = d.deal(ADJECTIVES), d.deal(ADJECTIVES)
    return f"{d.det()} {d.deal(THINGS)} {d.deal(PLACES)} was {first} and {second}."


def _t_why(d: _Dealer) -> str:
    return f"Why did {d.det()} {d.deal(PEOPLE)} {d.deal(VERBS)[0]} {d.a_noun(adjective=True)}{d.maybe(TIMES)}?"


def _t_while(d: _Dealer) -> str:
    return (f"{d.deal(NAMES)} {d.deal(INTRANSITIVE)} {d.deal(ADVERBS)} while "
            f"{d.det()} {d.deal(PEOPLE)} {d.deal(VERBS)[1]} {d.a_noun()}.")


def _t_what_a(d: _Dealer) -> str:
    adjective, noun = d.deal(ADJECTIVES), d.deal(THINGS)
    return f"What {_article(adjective)} {adjective} {noun} {d.deal(NAMES)} {d.deal(VERBS)[1]} {d.deal(TIMES)}!"


def _t_we(d: _Dealer) -> str:
    return f"We {d.deal(VERBS)[1]} {d.a_noun(adjective=True)} with {d.deal(NAMES)} {d.deal(TIMES)}."


TEMPLATES: tuple[Callable[[_Dealer], str], ...] = (
    _t_person_did_thing_place, _t_name_did_thing_time, _t_will, _t_question_did, _t_two_names, _t_fronted_time,
    _t_please, _t_i_think, _t_was, _t_why, _t_while, _t_what_a, _t_we,
)


def _finish(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def generate_sentences(n: int, seed: int) -> list[str]:
    """``n`` varied English sentences (5-12 words each), deterministic from ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise VastbenchError(f"asked for {n!r} sentences; ask for a positive number")
    rng = random.Random(int(seed))
    dealer = _Dealer(rng)
    out: list[str] = []
    while len(out) < n:
        sentence = _finish(dealer.deal(TEMPLATES)(dealer))
        if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
            out.append(sentence)
    return out


def phoneme_coverage(sentences: Iterable[str], voice: str = "en-us") -> dict[str, int]:
    """How often each eSpeak phoneme (stress marks stripped) occurs in ``sentences``."""
    from vastbench.data.synthtalk.speech import strip_stress, text_to_phonemes

    text = " ".join(s.strip() for s in sentences if s.strip())
    if not text:
        raise VastbenchError("no sentences to measure phoneme coverage on; pass at least one")
    return dict(Counter(strip_stress(p) for p in text_to_phonemes(text, voice)))
