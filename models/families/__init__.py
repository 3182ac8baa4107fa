"""The model-family registry: one entry per kind of model (see ``models.families.base``).

Adding a family is one module defining a ``Family`` subclass and one line here.
"""

from __future__ import annotations

from models.families.base import Explainer, Family
from models.families.networks import CNNFamily, MLPFamily
from models.families.trees import TreesFamily

FAMILIES: dict[str, Family] = {family.name: family for family in (MLPFamily(), CNNFamily(), TreesFamily())}


class UnknownFamily(ValueError):
    """No registered model family has this name."""


def family_of(kind: str) -> Family:
    try:
        return FAMILIES[kind]
    except KeyError:
        raise UnknownFamily(f"unknown model kind {kind!r}: use one of {', '.join(FAMILIES)}") from None


def family_choices() -> list[tuple[str, str]]:
    """(name, label) of every family: the choices of ``ModelVersion.kind`` and of forms."""
    return [(family.name, family.label) for family in FAMILIES.values()]


__all__ = ["FAMILIES", "Explainer", "Family", "UnknownFamily", "family_choices", "family_of"]
