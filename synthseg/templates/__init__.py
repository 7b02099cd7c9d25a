"""Templates: label maps + the recipe mapping their codes to intensity classes and targets."""

from synthseg.templates.recipe import Recipe, load_recipe, parse_recipe, shipped_recipes
from synthseg.templates.library import (
    Template, import_template, import_templates, list_templates, load_templates, phantom_templates,
)
from synthseg.templates.phantom import make_phantom
from synthseg.templates.dura import synthesize_dura

__all__ = ["Recipe", "load_recipe", "parse_recipe", "shipped_recipes", "Template", "import_template",
           "import_templates", "list_templates", "load_templates", "phantom_templates", "make_phantom",
           "synthesize_dura"]
