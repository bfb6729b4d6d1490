"""Which block a per-block method reads: a named block (``"B3"``) or the model's last one, whatever it is called."""
from __future__ import annotations

from saliency_bench import ModelWrapper


class LastBlock:
    """A model's last block, whatever it is called: the block ``GradCAM()`` (``gradcam``) reads.

    ``declared`` is the block this stands for on the benchmark's 5-block VGG-like models, recorded as the
    method's ``layer``; on a model with fewer blocks the method reads that model's last one.
    """

    declared = "B5"

    def resolve(self, model: ModelWrapper) -> str:
        """The name of ``model``'s last block."""
        return list(model.block_names)[-1]

    def __repr__(self) -> str:
        return "LAST_BLOCK"


LAST_BLOCK = LastBlock()


def resolve_block(model: ModelWrapper, block: str | LastBlock) -> str:
    """The name of ``block`` on ``model`` (LAST_BLOCK -> its last block); ValueError where the model has no such block."""
    if isinstance(block, LastBlock):
        return block.resolve(model)
    if block not in model.block_names:
        raise ValueError(f"model '{model.name}' has no block {block}; it has {', '.join(model.block_names)}")
    return block
