"""Built-in dataset formats, usable as ``formatting:`` in a LLaMA-Factory ``dataset_info.json`` entry."""

from vr_plugins.dataset_formats import BUILD_COLUMNS, POSTERIOR_COLUMNS, REASONING_COLUMNS
from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import DatasetFormat


@hookimpl
def register_dataset_formats(register):
    register(
        DatasetFormat(
            name="vr_reasoning",
            to_example="vr_plugins.dataset_formats:to_reasoning",
            default_columns=REASONING_COLUMNS,
            description="question/think/solution[/system] -> reasoning prompt, response think+solution.",
        )
    )
    register(
        DatasetFormat(
            name="vr_posterior",
            to_example="vr_plugins.dataset_formats:to_posterior",
            default_columns=POSTERIOR_COLUMNS,
            description="question + reference solution -> posterior prompt (template A/B), response = trace.",
        )
    )
    register(
        DatasetFormat(
            name="vr_build",
            to_example="vr_plugins.dataset_formats:to_build",
            default_columns=BUILD_COLUMNS,
            description="run-directory build output (question, response, weight, ...) under the reasoning prompt.",
        )
    )
