"""Anatomical ranges of the middle lobe's and the lingula's share of their lung, for tests.

Source (independent of the code under test): CT volumetry of 32 healthy volunteers, supine,
deep inspiration, Yamada et al., Respiration 2020;99:598-605 (doi:10.1159/000507265), table 3:
right middle lobe 9.3 % of both lungs (range 6.6-13.8 %), right lung 53.6 % (50.6-57.4 %), left
lung 46.4 % (42.6-49.4 %). The middle lobe's share of the right lung therefore lies between
6.6 / 57.4 = 11 % and 13.8 / 50.6 = 27 %. The lingula is not measured there; as the middle lobe's
homologue (two bronchopulmonary segments each) its range is taken as the middle lobe's over the
left lung: 6.6 / 49.4 = 13 % to 13.8 / 42.6 = 32 %. The bounds are widened by 2 points each way
for the method's own error (a boundary a few mm off over the whole lung)."""

RML_OF_RIGHT_LUNG = (0.09, 0.29)
LINGULA_OF_LEFT_LUNG = (0.11, 0.34)


def shares(volumes: dict) -> tuple[float, float]:
    """(middle lobe / right lung, lingula / left lung) from lobe volumes keyed RUL ... LLL."""
    right = volumes["RUL"] + volumes["RML"] + volumes["RLL"]
    left = volumes["LUL"] + volumes["LING"] + volumes["LLL"]
    return volumes["RML"] / right, volumes["LING"] / left


def within(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]
