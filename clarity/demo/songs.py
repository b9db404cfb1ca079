"""What the demo dataset contains: which excerpts, orchestrated for which instruments, in which
split.

An *orchestration* assigns voices (parts) of a score to CAD2 instruments, e.g. a chorale's soprano
to the flute. String quartets are played by strings, chorales by woodwind ensembles (the two
CadenzaWoodwind quartets: flute, oboe, clarinet or alto sax, bassoon) or by mixed wind and string
groups; five-part chorales (a violin or recorder obbligato over SATB) give the quintets. When an
instrument plays twice in a song its sources are numbered, as in EnsembleSet ("Violin_1",
"Violin_2").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import cycle
from typing import Literal

from clarity.demo.scores import PIECES, TRAINING_CHORALES, Piece

Split = Literal["train", "valid"]
Size = Literal["small", "tiny"]
SIZES: tuple[Size, ...] = ("small", "tiny")

# orchestration name -> ((instrument, voice index), ...), top voice first
ORCHESTRATIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "string_quartet": (("Violin", 0), ("Violin", 1), ("Viola", 2), ("Cello", 3)),
    "string_trio": (("Violin", 0), ("Viola", 2), ("Cello", 3)),
    "string_duo": (("Violin", 0), ("Cello", 3)),
    "wind_quartet": (("Flute", 0), ("Oboe", 1), ("Clarinet", 2), ("Bassoon", 3)),
    "wind_sax_quartet": (("Flute", 0), ("Oboe", 1), ("Sax", 2), ("Bassoon", 3)),
    "wind_trio": (("Flute", 0), ("Clarinet", 1), ("Bassoon", 3)),
    "flute_viola_cello": (("Flute", 0), ("Viola", 2), ("Cello", 3)),
    "flute_cello": (("Flute", 0), ("Cello", 3)),
    "flute_clarinet_viola_cello": (("Flute", 0), ("Clarinet", 1), ("Viola", 2), ("Cello", 3)),
    "violin_clarinet_viola_bassoon": (("Violin", 0), ("Clarinet", 1), ("Viola", 2), ("Bassoon", 3)),
    "violin_obbligato_quintet": (
        ("Violin", 0),
        ("Oboe", 1),
        ("Clarinet", 2),
        ("Viola", 3),
        ("Cello", 4),
    ),
    "violins_flute_quintet": (
        ("Violin", 0),
        ("Flute", 1),
        ("Violin", 2),
        ("Viola", 3),
        ("Cello", 4),
    ),
    "recorder_wind_quintet": (
        ("Flute", 0),
        ("Oboe", 1),
        ("Clarinet", 2),
        ("Sax", 3),
        ("Bassoon", 4),
    ),
    # inner voices for the flute and the saxophone, two flutes, the oboe above strings
    "oboe_flute_clarinet_bassoon": (("Oboe", 0), ("Flute", 1), ("Clarinet", 2), ("Bassoon", 3)),
    "violin_flute_viola_cello": (("Violin", 0), ("Flute", 1), ("Viola", 2), ("Cello", 3)),
    "violin_oboe_sax_cello": (("Violin", 0), ("Oboe", 1), ("Sax", 2), ("Cello", 3)),
    "flutes_clarinet_bassoon": (("Flute", 0), ("Flute", 1), ("Clarinet", 2), ("Bassoon", 3)),
    "flute_sax_viola_cello": (("Flute", 0), ("Sax", 1), ("Viola", 2), ("Cello", 3)),
}


@dataclass(frozen=True)
class SongPlan:
    """One song of the demo dataset.

    Attributes:
        split: "train" or "valid".
        name: song name, the key in ``music.<split>.json``.
        piece: the score it is cut from.
        orchestration: key of ``ORCHESTRATIONS``.
        duration: excerpt length in s.
    """

    split: Split
    name: str
    piece: Piece
    orchestration: str
    duration: float

    def sources(self) -> list[tuple[str, str, int]]:
        """``(source instrument label, instrument, voice index)`` per source, e.g. ``("Violin_1",
        "Violin", 0)``."""
        parts = ORCHESTRATIONS[self.orchestration]
        counts = Counter(instrument for instrument, _ in parts)
        seen: Counter[str] = Counter()
        labelled = []
        for instrument, voice in parts:
            seen[instrument] += 1
            label = f"{instrument}_{seen[instrument]}" if counts[instrument] > 1 else instrument
            labelled.append((label, instrument, voice))
        return labelled


# the ensembles the training chorales take in turn: about as many stems of each instrument, and
# more of those that the quartets and quintets above have fewest of
_TRAINING_CHORALE_ENSEMBLES = (
    "wind_sax_quartet",
    "oboe_flute_clarinet_bassoon",
    "violin_flute_viola_cello",
    "violin_oboe_sax_cello",
    "flutes_clarinet_bassoon",
    "wind_quartet",
    "flute_sax_viola_cello",
    "string_quartet",
)

# (split, piece slug, orchestration); excerpt lengths per split are in _DURATIONS
_SMALL = (
    ("train", "haydn_op74no1_i", "string_quartet"),
    ("train", "mozart_k80_i", "string_quartet"),
    ("train", "mozart_k156_i", "string_trio"),
    ("train", "haydn_op74no1_ii", "string_quartet"),
    ("train", "bwv269", "wind_quartet"),
    ("train", "bwv253", "wind_sax_quartet"),
    ("train", "bwv258", "wind_trio"),
    ("train", "bwv347", "flute_clarinet_viola_cello"),
    ("train", "bwv136_6", "violin_obbligato_quintet"),
    ("train", "bwv161_6", "recorder_wind_quintet"),
    ("train", "bwv367", "flute_cello"),
    ("train", "bwv66_6", "violin_clarinet_viola_bassoon"),
    ("train", "haydn_op74no1_iii", "string_quartet"),
    ("train", "haydn_op1no1_i", "string_quartet"),
    ("train", "mozart_k80_ii", "string_trio"),
    ("train", "mozart_k80_iii", "string_trio"),
    ("train", "mozart_k156_ii", "string_quartet"),
    ("train", "mozart_k458_ii", "string_quartet"),
    ("train", "beethoven_op18no1_iii", "string_duo"),
    ("train", "bwv1_6", "violin_obbligato_quintet"),
    ("train", "bwv10_7", "wind_quartet"),
    ("train", "bwv101_7", "wind_sax_quartet"),
    ("train", "bwv102_7", "wind_trio"),
    ("train", "bwv103_6", "flute_clarinet_viola_cello"),
    ("train", "bwv104_6", "violin_clarinet_viola_bassoon"),
    ("train", "bwv108_6", "flute_viola_cello"),
    ("train", "bwv11_6", "wind_quartet"),
    ("train", "bwv110_7", "wind_sax_quartet"),
    ("train", "bwv111_6", "string_quartet"),
    ("train", "bwv113_8", "flute_cello"),
    ("train", "bwv114_7", "wind_trio"),
    ("train", "bwv115_6", "wind_sax_quartet"),
    ("train", "bwv116_6", "flute_clarinet_viola_cello"),
    ("train", "bwv117_4", "violin_clarinet_viola_bassoon"),
    ("train", "bwv119_9", "wind_quartet"),
    ("train", "bwv12_7", "recorder_wind_quintet"),
    ("train", "bwv120_6", "flute_viola_cello"),
    ("train", "bwv124_6", "violins_flute_quintet"),
    # the training chorales, each played by the next ensemble of _TRAINING_CHORALE_ENSEMBLES
    *(
        ("train", piece.slug, ensemble)
        for piece, ensemble in zip(TRAINING_CHORALES, cycle(_TRAINING_CHORALE_ENSEMBLES))
    ),
    # every instrument of the recipe, ensembles of 2 to 5, two with a repeated voice
    ("valid", "mozart_k155_i", "string_quartet"),
    ("valid", "beethoven_op18no1_ii", "string_duo"),
    ("valid", "bwv281", "wind_trio"),
    ("valid", "bwv40_8", "wind_sax_quartet"),
    ("valid", "bwv172_6", "violins_flute_quintet"),
)
_TINY = (
    ("train", "haydn_op74no1_i", "string_quartet"),
    ("train", "bwv269", "violin_clarinet_viola_bassoon"),
    ("train", "bwv347", "wind_quartet"),
    ("valid", "mozart_k80_i", "string_duo"),
    ("valid", "haydn_op74no1_ii", "string_trio"),
)
_PLANS = {"small": _SMALL, "tiny": _TINY}
_DURATIONS: dict[Size, dict[Split, float]] = {
    "small": {"train": 24.0, "valid": 10.0},
    "tiny": {"train": 6.0, "valid": 4.0},
}


def plan_songs(size: Size) -> list[SongPlan]:
    """The songs of a demo dataset size, train songs first.

    Song names are ``<piece slug>_<index>`` (index counts the excerpts of that piece in the split,
    from ``000``), like the CAD2 validation songs ("anitrasdance_000").

    Raises:
        ValueError: for an unknown size.
    """
    if size not in _PLANS:
        raise ValueError(f"demo size {size!r}: expected one of {list(SIZES)}")
    pieces = {piece.slug: piece for piece in PIECES}
    uses: Counter[tuple[str, str]] = Counter()
    plans = []
    for split, slug, orchestration in _PLANS[size]:
        index = uses[(split, slug)]
        uses[(split, slug)] += 1
        plans.append(
            SongPlan(
                split=split,
                name=f"{slug}_{index:03d}",
                piece=pieces[slug],
                orchestration=orchestration,
                duration=_DURATIONS[size][split],
            )
        )
    return plans
