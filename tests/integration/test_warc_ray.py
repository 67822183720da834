"""warc.run on the shared Ray: one task per file, the same rows as the pure reader."""

from collections import Counter

from raylm.data import schema
from raylm.data.ingest import warc


def test_run_reads_all_files_in_parallel(ray_session, shared_data):
    cfg = warc.WarcConfig(paths=[str(shared_data / "warc")], content_types=[], rows_per_block=64)
    table = warc.run(cfg).to_arrow_refs()
    import ray

    rows = [r for t in ray.get(table) for r in t.to_pylist()]
    per_file = Counter(r["uri"].rsplit("/", 1)[1] for r in rows)
    assert per_file == {"IAH-20080430204825-00000-blackbook.warc.gz": 299, "cc-main-2020-34-excerpt.warc.gz": 16,
                        "dolma-sample-0000.warc.gz": 22, "dolma-sample-0001.warc.gz": 15,
                        "whirlwind.warc.gz": 1, "whirlwind.warc.wet.gz": 1}
    assert len({r["id"] for r in rows}) == len(rows)
    assert set(rows[0]) == set(schema.DOC_COLUMNS)
