"""The one-to-one baseline: a digit shown all at once, T = 1, where a recurrent layer is just
a feed-forward layer with extra weights that never matter."""

from __future__ import annotations

from rnnlab.lab.tasks.base import Task
from rnnlab.lab.tasks.digits import DigitsTask
from rnnlab.lab.tasks.digits_data import digits_split


class FlatDigitsTask(DigitsTask):
    """Classify scikit-learn's 8×8 digits from one step holding all 64 pixels.

    ``x`` (1, B, 64), ``y`` (B,). One-to-one; loss cross-entropy; metric accuracy on the same
    fixed test split as :class:`~rnnlab.lab.tasks.digits.DigitsTask`. Chance 0.1 (ten
    balanced classes). With T = 1 the recurrent weights ``weight_hh`` only ever multiply the
    zero initial state, so every cell reduces to a one-hidden-layer network: the baseline the
    sequential readings are compared with.

    Args:
        seq_len: must be 1 (or None).
        train_size: use only the first ``train_size`` training images.
    """

    name = "digits-flat"
    shape = "one-to-one"
    default_seq_len = 1

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        if seq_len not in (None, 1):
            raise ValueError(f"seq_len: the one-to-one task has T = 1, got {seq_len}")
        Task.__init__(self, 1, train_size)
        self.input_size = 64
        self.output_size = 10
        self.chance = 0.1
        digits_split("train", train_size)
