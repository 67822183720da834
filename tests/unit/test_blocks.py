"""Block, read-task and partition counts from data size and cluster CPUs (no Ray)."""

from raylm.data.blocks import FILES_PER_TASK, PARTITION_BYTES, TARGET_BLOCK_BYTES, block_target, partitions, read_tasks

MB = 1024 ** 2


def test_read_tasks_group_small_files_but_keep_the_cluster_busy():
    assert read_tasks(728, cpus=2) == 12  # 728 one-file tasks before: ceil(728 / 64)
    assert read_tasks(5, cpus=2) == 5 and read_tasks(0, cpus=2) == 1  # never more tasks than files
    assert read_tasks(100, cpus=32) == 100  # four per CPU wanted: every file its own task
    assert read_tasks(1_000_000, cpus=2) == -(-1_000_000 // FILES_PER_TASK)  # a huge listing still streams


def test_block_target_coalesces_only_what_is_too_small():
    assert block_target(728, 3 * MB, cpus=2) == 4  # two per CPU
    assert block_target(3, 3 * MB, cpus=2) == 3  # never more blocks than there are
    assert block_target(50, 20 * TARGET_BLOCK_BYTES, cpus=2) == 20  # big data keeps blocks of bounded size
    assert block_target(1, 0, cpus=1) == 1


def test_partitions_at_most_configured_fewer_for_small_inputs():
    assert partitions(32, 3 * MB) == 1
    assert partitions(32, 5 * PARTITION_BYTES) == 5
    assert partitions(16, 10_000 * MB) == 16
    assert partitions(32, 0) == 1
