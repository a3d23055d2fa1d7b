"""Training recipes: models the pipeline builds from data rather than downloads (catalog source ``train``)."""

from __future__ import annotations

from kiln.errors import KilnError
from kiln.recipes.digits import DigitsMLPRecipe

RECIPES = {DigitsMLPRecipe.name: DigitsMLPRecipe}


def get_recipe(name: str) -> type[DigitsMLPRecipe]:
    try:
        return RECIPES[name]
    except KeyError:
        raise KilnError(f"Unknown training recipe '{name}'. Known recipes: {sorted(RECIPES)}") from None
