"""The micro-scale study (docs/study.md): a synthetic checkable task, the arms, the driver, the results."""
