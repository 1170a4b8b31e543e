"""Built-in tasks: (source, target) string pairs generated from a seed, no download.

    dates     a date as people write it  ->  ISO 8601 "YYYY-MM-DD"   (the default task)
    reverse   a lower-case word          ->  the word reversed
    sort      a string of digits         ->  its digits in ascending order
    copy      a lower-case word          ->  the same word

Every task draws pairs from a ``random.Random(seed)``, keeps the first occurrence of each
pair and draws again on a repeat, so ``make_task(name, n, seed)`` is n distinct pairs and the
same n pairs for the same seed on every machine, and a smaller n gives a prefix of a larger
one. Asking for more pairs than a task can make is a ``DataError`` (``task_capacity``).

The date formats (``DATE_FORMATS`` holds their templates), each on two example dates:

    name                         2026-11-21 (a Saturday)      2003-05-04 (a Sunday)
    weekday_day_month_year       Saturday 21 November 2026    Sunday 4 May 2003
    us_month_day_yy              11/21/26                     5/4/03        month/day/yy (US)
    mon_day_ordinal_year         Nov 21st, 2026               May 4th, 2003
    european_dots                21.11.2026                   04.05.2003    dd.mm.yyyy
    the_ordinal_of_month_year    the 21st of November, 2026   the 4th of May, 2003
    year_mon_day                 2026 Nov 21                  2003 May 4
    month_day_year               November 21, 2026            May 4, 2003
    day_mon_year                 21 Nov 2026                  4 May 2003
    wkd_mon_day_year             Sat, Nov 21 2026             Sun, May 4 2003
    european_slashes             21/11/2026                   04/05/2003    dd/mm/yyyy
    compact                      20261121                     20030504      yyyymmdd
    year_slashes                 2026/11/21                   2003/05/04    yyyy/mm/dd
    day_mon_yy_dashes            21-Nov-26                    04-May-03
    month_the_ordinal_year       November the 21st, 2026      May the 4th, 2003
    european_dots_yy             21.11.26                     4.5.03        day.month.yy
    weekday_month_day_year       Saturday, November 21, 2026  Sunday, May 4, 2003
    ordinal_month_year           21st November 2026           4th May 2003
    mon_day_apostrophe_yy        Nov 21 '26                   May 4 '03

Each format fixes the order of its numbers, and no two formats can write two different dates
the same way: the only two "a/b/c" formats with the year last differ in the width of the
year (11/21/26 is always month/day/yy, 21/11/2026 always dd/mm/yyyy), and likewise "a.b.c"
(day.month.yy against dd.mm.yyyy); formats with a month name differ in their punctuation,
ordinal or weekday, also for May, whose name and abbreviation are one word. A format with
letters comes in three cases, each as likely: as written above, all lower case, all upper
case ("21 NOV 2026").
Dates are uniform over 1950-01-01 .. 2049-12-31, so a two-digit year yy means 19yy for
yy >= 50 and 20yy for yy < 50. Names are English, independent of the locale.
"""
import datetime
import random
import string

from minigrad.data.vocab import DataError

__all__ = ["TASKS", "make_task", "DATE_FORMATS", "DATE_STYLES", "FIRST_DATE", "LAST_DATE",
           "render_date", "date_styles", "task_capacity"]

FIRST_DATE, LAST_DATE = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

# name -> str.format template over the fields of ``_date_fields``; the module docstring
# shows each one written out.
DATE_FORMATS = {
    "weekday_day_month_year": "{Weekday} {d} {Month} {yyyy}",
    "us_month_day_yy": "{m}/{d}/{yy}",
    "mon_day_ordinal_year": "{Mon} {d}{ord}, {yyyy}",
    "european_dots": "{dd}.{mm}.{yyyy}",
    "the_ordinal_of_month_year": "the {d}{ord} of {Month}, {yyyy}",
    "year_mon_day": "{yyyy} {Mon} {d}",
    "month_day_year": "{Month} {d}, {yyyy}",
    "day_mon_year": "{d} {Mon} {yyyy}",
    "wkd_mon_day_year": "{Wkd}, {Mon} {d} {yyyy}",
    "european_slashes": "{dd}/{mm}/{yyyy}",
    "compact": "{yyyy}{mm}{dd}",
    "year_slashes": "{yyyy}/{mm}/{dd}",
    "day_mon_yy_dashes": "{dd}-{Mon}-{yy}",
    "month_the_ordinal_year": "{Month} the {d}{ord}, {yyyy}",
    "european_dots_yy": "{d}.{m}.{yy}",
    "weekday_month_day_year": "{Weekday}, {Month} {d}, {yyyy}",
    "ordinal_month_year": "{d}{ord} {Month} {yyyy}",
    "mon_day_apostrophe_yy": "{Mon} {d} '{yy}",
}

DATE_STYLES = ("written", "lower", "upper")

TASKS = {
    "dates": f"human-written dates in {len(DATE_FORMATS)} formats -> ISO 8601 YYYY-MM-DD (the default)",
    "reverse": "a random lower-case word of 3..10 letters -> the word reversed",
    "sort": "a random string of 3..10 digits -> its digits in ascending order",
    "copy": "a random lower-case word of 3..10 letters -> the same word",
}


def _ordinal_suffix(day):
    """1st 2nd 3rd 4th ... 11th 12th 13th ... 21st 22nd 23rd ... 31st."""
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _date_fields(date):
    weekday, month = WEEKDAYS[date.weekday()], MONTHS[date.month - 1]
    return dict(Weekday=weekday, Wkd=weekday[:3], Month=month, Mon=month[:3],
                d=str(date.day), dd=f"{date.day:02d}", m=str(date.month), mm=f"{date.month:02d}",
                yyyy=f"{date.year:04d}", yy=f"{date.year % 100:02d}", ord=_ordinal_suffix(date.day))


def date_styles(format_name):
    """The letter cases a format comes in: all of ``DATE_STYLES`` if it has letters, else one."""
    template = DATE_FORMATS[format_name]
    has_letters = any(
        any(ch.isalpha() for ch in literal) or field in ("Weekday", "Wkd", "Month", "Mon", "ord")
        for literal, field, _, _ in string.Formatter().parse(template)
    )
    return DATE_STYLES if has_letters else DATE_STYLES[:1]


def render_date(date, format_name, style="written"):
    """``date`` written in the format ``format_name`` and the letter case ``style``."""
    text = DATE_FORMATS[format_name].format(**_date_fields(date))
    return {"written": text, "lower": text.lower(), "upper": text.upper()}[style]


def _random_date(rng):
    span = LAST_DATE.toordinal() - FIRST_DATE.toordinal() + 1
    return datetime.date.fromordinal(FIRST_DATE.toordinal() + rng.randrange(span))


def _date_pair(rng):
    name = rng.choice(list(DATE_FORMATS))
    style = rng.choice(date_styles(name))
    date = _random_date(rng)
    return render_date(date, name, style), date.isoformat()


def _random_word(rng, alphabet):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 10)))


def _reverse_pair(rng):
    word = _random_word(rng, string.ascii_lowercase)
    return word, word[::-1]


def _sort_pair(rng):
    digits = _random_word(rng, string.digits)
    return digits, "".join(sorted(digits))


def _copy_pair(rng):
    word = _random_word(rng, string.ascii_lowercase)
    return word, word


_SAMPLERS = {"dates": _date_pair, "reverse": _reverse_pair, "sort": _sort_pair, "copy": _copy_pair}


def _check_task_name(name):
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; the built-in tasks are: {', '.join(TASKS)}")


def task_capacity(name):
    """How many distinct pairs task ``name`` can make (each source has one target)."""
    _check_task_name(name)
    if name == "dates":
        days = LAST_DATE.toordinal() - FIRST_DATE.toordinal() + 1
        return days * sum(len(date_styles(f)) for f in DATE_FORMATS)
    alphabet = 10 if name == "sort" else 26
    return sum(alphabet ** length for length in range(3, 11))


def make_task(name, n, seed=0):
    """n distinct (source, target) pairs of the built-in task ``name``, drawn from ``seed``.

    >>> make_task("dates", 2, seed=1)
    [('THE 28TH OF APRIL, 1961', '1961-04-28'), ('Tue, Nov 23 2038', '2038-11-23')]
    """
    _check_task_name(name)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise DataError(f"the number of pairs must be an integer >= 0, got {n!r}")
    capacity = task_capacity(name)
    if n > capacity:
        raise DataError(f"task {name!r} can make at most {capacity} distinct pairs, asked for {n}")
    rng, sample = random.Random(seed), _SAMPLERS[name]
    pairs = {}                                    # a dict keeps the order pairs first came in
    while len(pairs) < n:
        pairs.setdefault(sample(rng), None)
    return list(pairs)
