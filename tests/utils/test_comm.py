"""clouds.utils.comm: single-process fallbacks and a real (one-process gloo) group."""

import pytest
import torch
import torch.distributed as dist

from clouds.utils import comm


def test_without_process_group_is_one_process():
    assert not comm.is_distributed()
    assert (comm.get_rank(), comm.get_world_size(), comm.is_main_process()) == (0, 1, True)
    tensor = torch.tensor([1.0, 2.0])
    assert comm.all_reduce(tensor) is tensor
    assert tensor.tolist() == [1.0, 2.0]
    comm.barrier()


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="'mean'"):
        comm.all_reduce(torch.zeros(1), op="mean")  # type: ignore[arg-type]


def test_inside_a_gloo_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert comm.is_distributed()
        assert (comm.get_rank(), comm.get_world_size()) == (0, 1)
        tensor = torch.tensor([3.0, -1.0])
        for op in ("sum", "min", "max"):
            assert comm.all_reduce(tensor, op=op).tolist() == [3.0, -1.0]
        comm.barrier()
    finally:
        dist.destroy_process_group()
