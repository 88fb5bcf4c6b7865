"""DiffAugment's policy names and their parser, importable without torch: the ``[gan]`` and ``[progan]``
configs validate ``diffaugment`` with it. The augmentation itself is :mod:`pokegan.diffaugment`.
"""

from __future__ import annotations

from pokedata.errors import UserError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str, where: str = "diffaugment") -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"); "" -> (); unknown names are a UserError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise UserError(
            f"{where} {policy!r}: unknown augmentation {bad[0]!r}",
            hint=f"a comma-separated list of {', '.join(POLICIES)}, e.g. color,translation,cutout",
        )
    return names


__all__ = ["POLICIES", "parse_policy"]
