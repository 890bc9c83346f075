"""Scoring policy: the default reading of every ambiguity of the spec and its named variants.

Spec sections 4 and 5. A study reports which policy it used; ``ScoringPolicy.id`` is a short,
stable string for tables (``def1=default,def2=default,dendriform-nodules=exclude``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEF1_VARIANTS = ("default", "total")
DEF2_VARIANTS = ("default", "lobe", "each-lung")
DENDRIFORM_NODULE_VARIANTS = ("exclude", "count")


@dataclass(frozen=True)
class ScoringPolicy:
    """Which variant of each ambiguous rule applies.

    def1: ``default`` R >= 1 and L >= 1 and R + L >= 10; ``total`` R + L >= 10.
    def2: ``default`` a lobe >= 5 and R >= 1 and L >= 1; ``lobe`` a lobe >= 5 only;
          ``each-lung`` a right lobe >= 5 and a left lobe >= 5.
    dendriform_nodules: ``exclude`` (default) a lobe with dendriform PO contributes no nodular
          count; ``count`` its nodular POs are counted anyway.
    """

    def1: str = "default"
    def2: str = "default"
    dendriform_nodules: str = "exclude"

    def __post_init__(self) -> None:
        for field, allowed in (
            ("def1", DEF1_VARIANTS),
            ("def2", DEF2_VARIANTS),
            ("dendriform_nodules", DENDRIFORM_NODULE_VARIANTS),
        ):
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"policy.{field}: {value!r} is not one of {', '.join(allowed)}")

    @property
    def id(self) -> str:
        return (
            f"def1={self.def1},def2={self.def2},"
            f"dendriform-nodules={self.dendriform_nodules}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


DEFAULT_POLICY = ScoringPolicy()
