"""Benchmark data: realistic music searches and playlist names, and adversarial families.

``SEARCH_QUERIES`` is what users of a music bot actually type: bare titles,
"Artist - Title", every script the bot meets (Latin with accents, CJK,
Korean, Cyrillic, Arabic, Hebrew, Greek, Devanagari, Thai, Vietnamese),
emoji (with skin tones, ZWJ sequences and variation selectors), and the
punctuation real titles carry (apostrophes, ampersands, quotes, ``$``, ``/``,
``!``). A few titles contain the seed's blocklisted words on purpose ("Drop
It Like It's Hot", "Union of the Snake", "Delete Forever"): the strict policy
refuses them, the default one must not.

``ADVERSARIAL_FAMILIES`` names the shapes that could make a validator's cost
grow faster than its input; :func:`build_adversarial` builds a family's
string of an exact length (most repeat a fragment up to that length).
"""

from __future__ import annotations

SEARCH_QUERIES: tuple[str, ...] = (
    # The titles the brief names, and their neighbours.
    "Drop It Like It's Hot",
    "Snoop Dogg - Drop It Like It's Hot",
    "Union of the Snake",
    "Duran Duran - Union of the Snake",
    "Guns N' Roses - Sweet Child O' Mine",
    "Guns N' Roses - Knockin' on Heaven's Door",
    "Ke$ha - TiK ToK",
    "AC/DC - Back In Black",
    "AC/DC - Highway to Hell",
    "Grimes - Delete Forever",
    "Lil Wayne - Drop The World",
    "Insert Coin",
    "Simon & Garfunkel - The Sound of Silence",
    "Earth, Wind & Fire - September",
    "Hall & Oates - You Make My Dreams",
    "Kool & The Gang - Celebration",
    "Mumford & Sons - Little Lion Man",
    "Florence + The Machine - Dog Days Are Over",
    '"Weird Al" Yankovic - White & Nerdy',
    'David Bowie - "Heroes"',
    'Dvořák - Symphony No. 9 "From the New World"',
    "Don't Stop Me Now",
    "Queen - Bohemian Rhapsody",
    "The B-52's - Love Shack",
    "Panic! At The Disco - High Hopes",
    "P!nk - So What",
    "will.i.am - Scream & Shout",
    "Outkast - Hey Ya!",
    "Kendrick Lamar - HUMBLE.",
    "A$AP Rocky - L$D",
    "$uicideboy$ - Paris",
    "Ty Dolla $ign - Or Nah",
    "Rock 'n' Roll Ain't Noise Pollution",
    "Bon Jovi - Livin' on a Prayer",
    "Sinéad O'Connor - Nothing Compares 2 U",
    "Dr. Dre - Still D.R.E. ft. Snoop Dogg",
    "Wu-Tang Clan - C.R.E.A.M.",
    "Run-D.M.C. - It's Tricky",
    "Salt-N-Pepa - Push It",
    "2Pac - California Love",
    "The Notorious B.I.G. - Juicy",
    "blink-182 - All The Small Things",
    "t.A.T.u. - All The Things She Said",
    "Daft Punk - Harder, Better, Faster, Stronger",
    "Pink Floyd - Another Brick in the Wall, Pt. 2",
    "Beyoncé - Crazy In Love (feat. JAY-Z)",
    "Luis Fonsi - Despacito (feat. Daddy Yankee)",
    "Lil Nas X - Old Town Road (Remix)",
    "Tyler, The Creator - EARFQUAKE",
    "Post Malone, Swae Lee - Sunflower",
    "Taylor Swift - All Too Well (10 Minute Version) (Taylor's Version) (From The Vault)",
    "taylor swift love story (taylor's version)",
    "never gonna give you up",
    "rain sounds 10 hours",
    "lo-fi beats to relax/study to",
    "The Weeknd - Blinding Lights",
    "Harry Styles - As It Was",
    "Olivia Rodrigo - drivers license",
    "Billie Eilish - bad guy",
    "Bruno Mars - 24K Magic",
    "Nirvana - Smells Like Teen Spirit",
    "Led Zeppelin - Stairway to Heaven",
    "The Beatles - Hey Jude",
    "Michael Jackson - Billie Jean",
    "Eminem - Lose Yourself",
    "Mariah Carey - All I Want for Christmas Is You",
    "The Pogues - Fairytale of New York",
    "Dexys Midnight Runners - Come On Eileen",
    "Creedence Clearwater Revival - Fortunate Son",
    "Chopin - Nocturne Op. 9 No. 2",
    "Mozart - Eine kleine Nachtmusik, K. 525",
    "Bach - Toccata & Fugue in D minor, BWV 565",
    "Vivaldi – The Four Seasons: Spring (La primavera)",
    "100% Pure Love",
    "R&B Classics",
    "50 Cent - In Da Club",
    # Latin scripts with accents.
    "Beyoncé - Halo",
    "Beyoncé - Déjà Vu",
    "Sigur Rós - Hoppípolla",
    "Mötley Crüe - Kickstart My Heart",
    "Motörhead - Ace of Spades",
    "Blue Öyster Cult - (Don't Fear) The Reaper",
    "Céline Dion - My Heart Will Go On",
    "Édith Piaf - La Vie en rose",
    "Françoise Hardy - Tous les garçons et les filles",
    "Stromae - Alors on danse",
    "Rosalía - MALAMENTE",
    "Björk - Jóga",
    "Måneskin - Beggin'",
    "Café Tacvba - Eres",
    "Los Del Río - Macarena",
    "Bad Bunny - Tití Me Preguntó",
    "Die Ärzte - Schrei nach Liebe",
    "Herbert Grönemeyer - Männer",
    "Beethoven - Für Elise",
    "Saint-Saëns - Danse macabre",
    "Tom Jobim - Águas de Março",
    "João Gilberto - Chega de Saudade",
    "Mariza - Ó Gente da Minha Terra",
    "Tiësto - The Business",
    "Jack Ü - Where Are Ü Now",
    "Ólafur Arnalds - saman",
    "Tarkan - Şımarık",
    "Barış Manço - Dönence",
    "Dawid Podsiadło - Małomiasteczkowy",
    "Omega - Gyöngyhajú lány",
    "Sơn Tùng M-TP - Chúng Ta Của Hiện Tại",
    "Đen - Đi Về Nhà",
    "Cheb Khaled - Aïcha",
    "Ménage à trois; live",
    # CJK.
    "米津玄師 - Lemon",
    "YOASOBI - 夜に駆ける",
    "宇多田ヒカル - First Love",
    "あいみょん - マリーゴールド",
    "Official髭男dism - Pretender",
    "King Gnu - 白日",
    "LiSA - 紅蓮華",
    "Ado - うっせぇわ",
    "Aimer - 残響散歌",
    "竹内まりや - プラスティック・ラブ",
    "松原みき - 真夜中のドア〜stay with me",
    "中島みゆき - 糸",
    "久石譲 - 君をのせて",
    "坂本龍一 - Merry Christmas Mr. Lawrence",
    "周杰倫 - 晴天",
    "邓紫棋 - 光年之外",
    "王菲 - 红豆",
    "陳奕迅 - 十年",
    "鄧麗君 - 月亮代表我的心",
    "五月天 - 倔強",
    # Korean.
    "BTS (방탄소년단) - 봄날 (Spring Day)",
    "BTS - 피 땀 눈물",
    "아이유 (IU) - 좋은 날",
    "BLACKPINK - 뚜두뚜두 (DDU-DU DDU-DU)",
    "NewJeans - Hype Boy",
    "빅뱅 - 거짓말",
    "싸이 - 강남스타일",
    "(여자)아이들 - 퀸카 (Queencard)",
    "폴킴 - 모든 날, 모든 순간",
    "Stray Kids - 락 (樂)",
    # Cyrillic.
    "Кино - Группа крови",
    "Земфира - Хочешь?",
    "t.A.T.u. - Я сошла с ума",
    "Сплин - Выхода нет",
    "ДДТ - Что такое осень",
    "Би-2 - Полковнику никто не пишет",
    "Мумий Тролль - Владивосток 2000",
    "Алла Пугачёва - Миллион алых роз",
    "Океан Ельзи - Обійми",
    "Вопли Відоплясова - Весна",
    # Arabic, Hebrew, Greek, Indic, Thai.
    "عمرو دياب - تملي معاك",
    "فيروز - كيفك إنت",
    "أم كلثوم - إنت عمري",
    "نانسي عجرم - آه ونص",
    "محمد عبده - الأماكن",
    "تامر حسني - ناسيني ليه",
    "עומר אדם - תל אביב",
    "Σωκράτης Μάλαμας - Πριγκηπέσσα",
    "अरिजीत सिंह - तुम ही हो",
    "ลาบานูน - ยาใจ",
    # Emoji: plain, with skin tones, variation selectors and ZWJ sequences.
    "lofi hip hop 🎧📚",
    "🔥 party mix 2024 🔥",
    "sad songs 😢",
    "Coldplay - Viva La Vida 🎻",
    "Christmas hits 🎄🎅",
    "❤️ love songs",
    "🇯🇵 city pop",
    "gym workout 💪🏽",
    "family 👨‍👩‍👧‍👦 road trip songs",
    "Marshmello - Alone 🍡",
)

PLAYLIST_NAMES: tuple[str, ...] = (
    "Road trip 🚗",
    "Chill vibes",
    "Mom's favourites",
    "Rock & Roll classics",
    "Friday night 🎉",
    "Study / Focus",
    'Tom\'s "best of" 2024',
    "カラオケ",
    "Любимые песни",
    "أغاني هادئة",
    "K-pop 최고",
    "Drop it like it's hot 🔥",
)

CORPUS: tuple[str, ...] = SEARCH_QUERIES + PLAYLIST_NAMES

# name -> (head, fragment). The string of length n is (head + fragment * k)[:n].
_REPEATED: dict[str, tuple[str, str]] = {
    # A quote and an OR condition, never closed: many starts for _QUOTE_CONDITION.
    "quote-or": ("", "' or a"),
    # Tag segments that never reach '>': many starts for _TAG_SEGMENT.
    "tag-open": ("", "<a"),
    # SQL comments that are opened and never closed (as the only kind of text).
    "comment-open": ("", "/*"),
    # A stacked statement start after every semicolon, never completed by FROM.
    "stacked-select": ("", "; select "),
    # Percent escapes: every round of decoding has work to do.
    "percent-27": ("", "%27"),
    # Entity starts without a number: html.unescape sees many '&'.
    "entity-start": ("", "&#"),
    # Zero-width and bidi controls interleaved with letters.
    "zero-width+bidi": ("", "s\u200be\u202el\u2066e\u200dc\u2069t\ufeff"),
    # One letter carrying a stack of one combining mark (U+0301, class 230).
    "combining-one-kind": ("a", "\u0301"),
    # "Zalgo": one letter carrying marks of alternating combining classes
    # (above 230, below 220, overlay 1, iota subscript 240), out of
    # canonical order, so NFKC must reorder them.
    "combining-zalgo": ("a", "\u0301\u0316\u0334\u0345"),
    # Fullwidth letters that NFKC folds to ASCII.
    "fullwidth": ("", "ｊａｖａｓｃｒｉｐｔ"),
    # Runs of mixed whitespace (ASCII and Unicode) between letters.
    "whitespace-runs": ("", "a \t\n\u00a0\u2003\u3000\r\n  \u2028 "),
    # "javascript" spelled with spaces, which the compact form removes.
    "javascript-spaced": ("", "j a v a s c r i p t "),
}

# The same four marks as "combining-zalgo", in descending combining class and
# in equal blocks (all 240s, then all 230s, 220s, 1s): the reverse of
# canonical order, so reordering has the most work to do.
_DESCENDING_MARKS = "\u0345\u0301\u0316\u0334"


def _repeated(head: str, fragment: str, length: int) -> str:
    count = max(0, length - len(head)) // len(fragment) + 1
    return (head + fragment * count)[:length]


def _combining_reversed(length: int) -> str:
    body = length - 1
    block = body // len(_DESCENDING_MARKS)
    marks = "".join(mark * block for mark in _DESCENDING_MARKS)
    return "a" + marks + _DESCENDING_MARKS[-1] * (body - len(marks))


ADVERSARIAL_FAMILIES: tuple[str, ...] = (*_REPEATED, "combining-reversed")


def build_adversarial(family: str, length: int) -> str:
    """Return the ``family`` string of exactly ``length`` characters."""
    if family == "combining-reversed":
        text = _combining_reversed(length)
    else:
        text = _repeated(*_REPEATED[family], length)
    assert len(text) == length, (family, length, len(text))
    return text
