"""The cleaning stages' `run` functions chained on a tiny Ray dataset (issue 4)."""

from raylm.data import augment, content, decontam, extract, langid, normalise, pii, quality, schema

GOOD = ("The committee met on Tuesday to discuss the budget for the coming year and the plans that go with it. "
        "Members agreed that spending on schools should rise, and that the roads program would have to wait. "
        "Several speakers asked whether the city could afford both projects at the same time. "
        "The mayor said she would publish a detailed proposal with new figures before the next meeting. "
        "Residents who want to comment can attend the hearing or write to clerk@city.example.org directly. "
        "A final vote is expected at the end of the month, after the public consultation has closed.")
FR = ("Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et des projets qui "
      "l'accompagnent, et les membres ont convenu que les dépenses pour les écoles devaient augmenter.")
PAGE = f"<html><head><title>Budget</title></head><body><nav>Home | About</nav><main><p>{GOOD}</p></main></body></html>"


def test_clean_stages_chained(ray_session, tmp_path):
    import ray

    bench = tmp_path / "bench.tsv"  # an evaluation set: one of its items leaked into the "leak" document
    bench.write_text("sentence\tlabel\ncritics called the new zoo the finest building the city has ever seen\t1\n")

    docs = schema.make_docs([
        {"id": "html", "text": PAGE, "content_type": "text/html", "url": "https://news.example.com/a"},
        {"id": "fr", "text": FR, "content_type": "text/plain"},
        {"id": "blocked", "text": GOOD, "content_type": "text/plain", "url": "https://www.xvideos.com/x"},
        {"id": "short", "text": "The weather is nice today and the children\x00 are happy about it.",
         "content_type": "text/plain"},
        {"id": "leak", "text": GOOD + " Critics called the new zoo the finest building the city has ever seen.",
         "content_type": "text/plain"},
    ])
    ds = ray.data.from_arrow(docs)
    ds = extract.run(ds, extract.ExtractConfig())
    ds = normalise.run(ds, normalise.NormaliseConfig())
    ds = langid.run(ds, langid.LangIdConfig(num_actors=1))
    ds = quality.run(ds, quality.QualityConfig())
    ds = content.run(ds, content.ContentConfig())
    ds = decontam.run(ds, decontam.DecontamConfig(paths=[str(bench)], text_field="sentence", ngram=10))
    ds = pii.run(ds, pii.PiiConfig())
    ds = augment.run(ds, augment.AugmentConfig(ratio=1.0))
    rows = {r["id"]: r for r in ds.take_all()}

    assert rows["html"]["drop"] is None and rows["html"]["lang"] == "en"
    assert "<EMAIL>" in rows["html"]["text"] and "clerk@" not in rows["html"]["text"]
    assert "Home | About" not in rows["html"]["text"] and rows["html"]["pii_email"] == 1
    assert rows["fr"]["drop"] == "langid:not_allowed" and rows["fr"]["lang"] == "fr"
    assert rows["blocked"]["drop"] == "content:domain"
    assert rows["short"]["drop"] == "quality:gopher_short_doc"
    assert rows["leak"]["drop"] == "decontam:benchmark"
    copies = [r for r in rows.values() if r["augmented_from"] is not None]
    assert [c["augmented_from"] for c in copies] == ["html"]  # only kept rows are augmented
    assert len(rows) == 6 and set(docs.column_names) <= set(rows["html"])
