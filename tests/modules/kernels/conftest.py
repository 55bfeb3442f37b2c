import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The kernel tests use tiny tensors, where a second intra-op thread only adds
    synchronization; on a busy 2-core machine its spin-waits made the suite 4x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
