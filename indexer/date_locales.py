"""Month and day names of the locales the date filter's ``locale`` option reads, as Java (and
so Logstash's Joda parser, with the JDK's CLDR data) writes them: full names, abbreviations
(with or without their trailing dot), and the older short forms servers still print
(German ``Mär``/``Mrz``, Austrian ``Jän``, Spanish ``sep``).

:func:`language` turns a locale name (``fr``, ``fr_FR``, ``pt-BR``, ``de_DE.UTF-8``) into the
table's key, or raises ``ValueError`` for a locale not here; :func:`to_english` rewrites the
names a format expects (months, days, in the format's order) into the English abbreviations
``strptime`` reads.
"""

from __future__ import annotations

from functools import lru_cache

import regex

ENGLISH_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")
ENGLISH_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# per language: 12 months, then 7 days (Monday first); each entry lists the names of one month
# or day, separated by '|': the full name first, then its abbreviations (dots are optional)
_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("january|jan", "february|feb", "march|mar", "april|apr", "may", "june|jun",
           "july|jul", "august|aug", "september|sept|sep", "october|oct", "november|nov",
           "december|dec",
           "monday|mon", "tuesday|tue|tues", "wednesday|wed", "thursday|thu|thur|thurs",
           "friday|fri", "saturday|sat", "sunday|sun"),
    "de": ("januar|jänner|jan|jän", "februar|feber|feb", "märz|mär|mrz", "april|apr", "mai",
           "juni|jun", "juli|jul", "august|aug", "september|sept|sep", "oktober|okt",
           "november|nov", "dezember|dez",
           "montag|mo|mon", "dienstag|di|die", "mittwoch|mi|mit", "donnerstag|do|don",
           "freitag|fr|fre", "samstag|sonnabend|sa|sam", "sonntag|so|son"),
    "fr": ("janvier|janv", "février|févr|fév", "mars", "avril|avr", "mai", "juin",
           "juillet|juil", "août", "septembre|sept", "octobre|oct", "novembre|nov",
           "décembre|déc",
           "lundi|lun", "mardi|mar", "mercredi|mer", "jeudi|jeu", "vendredi|ven",
           "samedi|sam", "dimanche|dim"),
    "es": ("enero|ene", "febrero|feb", "marzo|mar", "abril|abr", "mayo|may", "junio|jun",
           "julio|jul", "agosto|ago", "septiembre|setiembre|sept|sep|set", "octubre|oct",
           "noviembre|nov", "diciembre|dic",
           "lunes|lun", "martes|mar", "miércoles|mié|mie", "jueves|jue", "viernes|vie",
           "sábado|sáb|sab", "domingo|dom"),
    "it": ("gennaio|gen", "febbraio|feb", "marzo|mar", "aprile|apr", "maggio|mag",
           "giugno|giu", "luglio|lug", "agosto|ago", "settembre|set", "ottobre|ott",
           "novembre|nov", "dicembre|dic",
           "lunedì|lunedi|lun", "martedì|martedi|mar", "mercoledì|mercoledi|mer",
           "giovedì|giovedi|gio", "venerdì|venerdi|ven", "sabato|sab", "domenica|dom"),
    "nl": ("januari|jan", "februari|feb", "maart|mrt|mar", "april|apr", "mei", "juni|jun",
           "juli|jul", "augustus|aug", "september|sep|sept", "oktober|okt", "november|nov",
           "december|dec",
           "maandag|ma", "dinsdag|di", "woensdag|wo", "donderdag|do", "vrijdag|vr",
           "zaterdag|za", "zondag|zo"),
    "pt": ("janeiro|jan", "fevereiro|fev", "março|mar", "abril|abr", "maio|mai", "junho|jun",
           "julho|jul", "agosto|ago", "setembro|set", "outubro|out", "novembro|nov",
           "dezembro|dez",
           "segunda-feira|segunda|seg", "terça-feira|terça|ter", "quarta-feira|quarta|qua",
           "quinta-feira|quinta|qui", "sexta-feira|sexta|sex", "sábado|sáb|sab",
           "domingo|dom"),
}
LANGUAGES = tuple(_NAMES)
_SAME_AS_ENGLISH = ("c", "posix", "root", "")


def language(locale: str) -> str:
    """The table's key for a locale name; ValueError when its language is not in the table."""
    lang = regex.split(r"[-_.@]", locale.strip().lower(), maxsplit=1)[0]
    if lang in _SAME_AS_ENGLISH:
        return "en"
    if lang not in _NAMES:
        raise ValueError(f"locale {locale!r}: month and day names are known for "
                         f"{', '.join(LANGUAGES)} (and C/POSIX, read as en)")
    return lang


@lru_cache(maxsize=16)
def _table(lang: str):
    """(a regex finding any name, name -> {'month' | 'day': index})."""
    kinds: dict[str, dict[str, int]] = {}
    for k, entry in enumerate(_NAMES[lang]):
        kind, index = ("month", k) if k < 12 else ("day", k - 12)
        for name in entry.split("|"):
            kinds.setdefault(name, {})[kind] = index
    names = sorted(kinds, key=len, reverse=True)
    finder = regex.compile(r"(?<![\p{L}])(" + "|".join(regex.escape(n) for n in names)
                           + r")\.?(?![\p{L}])", regex.IGNORECASE)
    return finder, kinds


def to_english(text: str, expected: list[str], lang: str) -> str:
    """``text`` with the month and day names ``expected`` (in the order the format has them)
    written in English abbreviations; a name that could be either (Spanish ``mar``: marzo or
    martes) is read as the kind the format expects next."""
    if not expected:
        return text
    finder, kinds = _table(lang)
    out: list[str] = []
    last = 0
    queue = list(expected)
    for m in finder.finditer(text):
        if not queue:
            break
        found = kinds[m.group(1).lower()]
        if queue[0] not in found:
            continue
        kind = queue.pop(0)
        english = ENGLISH_MONTHS if kind == "month" else ENGLISH_DAYS
        out.append(text[last:m.start()])
        out.append(english[found[kind]])
        last = m.end()
    out.append(text[last:])
    return "".join(out)
