import pytest

from rnnlab.lab.train import TrainConfig


@pytest.fixture
def tiny():
    """A TrainConfig small enough for a step to take a millisecond or two."""

    def make(**changes) -> TrainConfig:
        base = {"task": "adding", "cell": "lstm", "hidden": 8, "seq_len": 8, "steps": 10,
                "batch_size": 8, "lr": 1e-2, "eval_every": 5, "eval_size": 32, "threads": 1}
        base.update(changes)
        return TrainConfig(**base)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a busy machine makes two much slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
