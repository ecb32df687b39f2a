"""Built-in templates: the reasoning prompt and posterior templates A and B (vr_plugins.formats)."""

from vr_plugins.formats import BUILTIN_TEMPLATES
from vr_plugins.hookspecs import hookimpl


@hookimpl
def register_templates(register):
    for template in BUILTIN_TEMPLATES:
        register(template)
