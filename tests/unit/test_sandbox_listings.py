from collections import Counter

from sandbox.listings import synthetic_listings


def test_the_same_seed_gives_the_same_listings_and_another_seed_others():
    first = list(synthetic_listings(300, ["a", "b"], 5))
    assert first == list(synthetic_listings(300, ["a", "b"], 5))
    assert {r["ListingKey"] for r in first}.isdisjoint({r["ListingKey"] for r in synthetic_listings(300, ["a", "b"], 6)})


def test_listings_are_plausible():
    rows = list(synthetic_listings(2000, ["a", "b", "c"], 1))
    assert len({(r["SourceId"], r["ListingKey"]) for r in rows}) == 2000
    assert Counter(r["SourceId"] for r in rows) == {"a": 667, "b": 667, "c": 666}
    statuses = Counter(r["StandardStatus"] for r in rows)
    assert statuses.most_common(1)[0][0] == "Active"
    for r in rows:
        assert 24 < r["Latitude"] < 72 or r["StateOrProvince"] in ("HI", "PR")
        assert r["ListPrice"] > 0 and len(r["PostalCode"]) == 5
        assert len(r["Media"]) == r["PhotosCount"]
        if r["PropertyType"] != "Land":
            assert 1 <= r["BedroomsTotal"] <= 6
