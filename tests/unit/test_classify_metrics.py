"""Metric code against hand-computed confusion matrices."""

import numpy as np
import pytest

from raylm.eval.classify import confusion_matrix, metrics_from_confusion, metrics_markdown


def test_confusion_matrix_counts():
    cm = confusion_matrix([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 2, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 3)


def test_binary_by_hand():
    # true 0: 5 right, 2 called 1; true 1: 1 called 0, 7 right
    m = metrics_from_confusion(np.array([[5, 2], [1, 7]]), ["neg", "pos"])
    assert m["n"] == 15 and m["accuracy"] == pytest.approx(12 / 15)
    assert m["binary"] == {"positive": "pos", "precision": pytest.approx(7 / 9), "recall": pytest.approx(7 / 8),
                           "f1": pytest.approx(14 / 17)}
    assert m["per_class"]["neg"]["precision"] == pytest.approx(5 / 6)
    assert m["per_class"]["neg"]["recall"] == pytest.approx(5 / 7)
    assert m["per_class"]["neg"]["f1"] == pytest.approx(10 / 13)
    assert m["macro_f1"] == pytest.approx((10 / 13 + 14 / 17) / 2)
    assert m["weighted_f1"] == pytest.approx((7 * 10 / 13 + 8 * 14 / 17) / 15)
    assert metrics_from_confusion(np.array([[5, 2], [1, 7]]), positive=0)["binary"]["f1"] == pytest.approx(10 / 13)


def test_three_classes_by_hand():
    cm = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]])
    m = metrics_from_confusion(cm)
    assert m["accuracy"] == pytest.approx(0.6)
    p = [3 / 4, 2 / 3, 1 / 3]
    r = [3 / 4, 1 / 2, 1 / 2]
    f = [3 / 4, 4 / 7, 2 / 5]
    for i in range(3):
        c = m["per_class"][str(i)]
        assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((p[i], r[i], f[i]))
    assert m["macro_precision"] == pytest.approx(sum(p) / 3)
    assert m["macro_recall"] == pytest.approx(sum(r) / 3)
    assert m["macro_f1"] == pytest.approx(sum(f) / 3)
    assert "binary" not in m
    assert "| 2 | 1 | 0 | 1 |" in metrics_markdown(m)


def test_never_predicted_class_is_zero_not_nan():
    m = metrics_from_confusion(np.array([[4, 0], [3, 0]]))
    assert m["per_class"]["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    assert m["undefined_precision_classes"] == 1
    assert m["accuracy"] == pytest.approx(4 / 7)
    empty = metrics_from_confusion(np.zeros((2, 2), dtype=int))
    assert empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0


def test_sharded_counts_sum_to_the_whole_set():
    """Summed per-shard matrices give the metrics of the whole set; averaging per-shard F1 does not."""
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 101), rng.integers(0, 4, 101)
    whole = metrics_from_confusion(confusion_matrix(y, p, 4))
    shards = [confusion_matrix(y[r::3], p[r::3], 4) for r in range(3)]
    summed = metrics_from_confusion(sum(shards))
    assert summed == whole and summed["n"] == 101
    mean_of_shards = np.mean([metrics_from_confusion(s)["macro_f1"] for s in shards])
    assert mean_of_shards != pytest.approx(whole["macro_f1"], abs=1e-9)


@pytest.mark.slow  # two processes import torch: ~13 s here
def test_all_reduce_sums_across_processes(tmp_path):
    """Two gloo processes (torch.multiprocessing, no Ray) each count half; both see the sum."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    got = [np.load(tmp_path / f"cm{r}.npy") for r in range(2)]
    assert got[0].tolist() == got[1].tolist() == [[2, 1], [0, 3]]


def _worker(rank, tmp):
    import torch.distributed as dist

    from raylm.eval.classify import all_reduce_confusion

    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=2)
    y, p = [0, 0, 1, 1, 0, 1], [0, 1, 1, 1, 0, 1]
    cm = all_reduce_confusion(confusion_matrix(y[rank::2], p[rank::2], 2))
    np.save(f"{tmp}/cm{rank}.npy", cm)
    dist.destroy_process_group()
