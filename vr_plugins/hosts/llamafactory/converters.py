"""One LLaMA-Factory converter class for every registered dataset format.

Imported only once ``llamafactory.data.converter`` has run (it subclasses its ``DatasetConverter``). The
format is looked up by the entry's ``formatting`` name; columns are the format's defaults overlaid with the
entry's ``columns``; the template is the recipe's ``template:`` when it is a registered one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llamafactory.data.converter import DatasetConverter
from llamafactory.data.data_utils import Role

from vr_plugins.dataset_formats import DatasetFormatError
from vr_plugins.hosts.llamafactory import keys as K
from vr_plugins.registry import registry
from vr_plugins.types import resolve


@dataclass
class RegistryConverter(DatasetConverter):
    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        fmt = registry("dataset_formats").get(self.dataset_attr.formatting)
        columns = {**fmt.default_columns, **(getattr(self.dataset_attr, K.DATASET_COLUMNS_ATTR, None) or {})}
        templates = registry("templates")
        template = templates.get(self.data_args.template) if self.data_args.template in templates else None
        try:
            out = resolve(fmt.to_example)(example, columns, template)
        except DatasetFormatError as exc:
            raise DatasetFormatError(f"dataset {self.dataset_attr.dataset_name!r}: {exc}") from None
        return {
            "_prompt": [{"role": Role.USER.value, "content": out["user"]}],
            "_response": [{"role": Role.ASSISTANT.value, "content": out["response"]}],
            "_system": out["system"],
            "_tools": "",
            "_images": None,
            "_videos": None,
            "_audios": None,
        }
