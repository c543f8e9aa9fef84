"""Which loggers a run has beside its own records (``metrics.csv``, TensorBoard, the learning curve):
``genpo.run.logger``, with each logger's options as a gin configurable."""

from __future__ import annotations

from collections.abc import Sequence

import gin

LOGGERS = ("tensorboard", "wandb")


@gin.configurable("wandb", module="genpo")
def wandb_logger(*, project: str = "genpo", entity: str | None = None, group: str | None = None, tags: Sequence[str] = ()):
    """A Weights & Biases logger (:mod:`genpo.training.wandb_logger`): ``genpo.wandb.project = 'my-project'``."""
    from genpo.training.wandb_logger import WandbLogger

    return WandbLogger(project=project, entity=entity, group=group, tags=tags)


def metric_sinks(logger: str) -> list:
    """The extra loggers of ``genpo.run.logger``: none for ``tensorboard`` (always written), W&B for ``wandb``."""
    return [wandb_logger()] if logger == "wandb" else []
