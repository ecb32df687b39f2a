"""Registers every template of the registry as a LLaMA-Factory chat template.

The LLaMA-Factory template is only the ChatML shell plus the assistant prefill; the system and user
texts of a posterior template depend on the example (they contain the reference solution), so the
dataset converters render them with ``vr_plugins.formats.Template.format_fields`` and pass them as the
example's system and user content. ``default_system`` is used only when an example gives no system
(plain alpaca/sharegpt data with ``template: vr_reasoning``).
"""

from __future__ import annotations

from vr_plugins.formats import IM_END, IM_START
from vr_plugins.registry import registry


def register_templates(template_module) -> list[str]:
    from llamafactory.data.formatter import EmptyFormatter, StringFormatter  # noqa: F401

    added = []
    for name, template in registry("templates").items():
        if name in template_module.TEMPLATES:
            continue
        default_system = "" if template.needs_solution else template.system
        template_module.register_template(
            name=name,
            format_user=StringFormatter(
                slots=[f"{IM_START}user\n{{{{content}}}}{IM_END}\n{IM_START}assistant\n{template.assistant_prefix}"]
            ),
            format_assistant=StringFormatter(slots=[f"{{{{content}}}}{IM_END}\n"]),
            format_system=StringFormatter(slots=[f"{IM_START}system\n{{{{content}}}}{IM_END}\n"]),
            default_system=default_system,
            stop_words=[IM_END],
            replace_eos=True,
        )
        added.append(name)
    return added
