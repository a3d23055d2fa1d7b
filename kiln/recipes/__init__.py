"""Training recipes: models the pipeline builds from data rather than downloads (catalog source ``train``)."""

from __future__ import annotations

from typing import Any

from kiln.errors import KilnError
from kiln.recipes.digits import DigitsMLPRecipe
from kiln.recipes.digits_ddpm import DigitsDDPMRecipe

RECIPES: dict[str, Any] = {DigitsMLPRecipe.name: DigitsMLPRecipe, DigitsDDPMRecipe.name: DigitsDDPMRecipe}


def get_recipe(name: str) -> Any:
    try:
        return RECIPES[name]
    except KeyError:
        raise KilnError(f"Unknown training recipe '{name}'. Known recipes: {sorted(RECIPES)}") from None
