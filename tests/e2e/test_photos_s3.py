"""Issue #4's check against a real S3 server (SeaweedFS): every sandbox MLS's photos through
the pipeline and its strategy; the bucket then holds exactly the expected photos byte for byte;
a second run uploads nothing; changed photos replace their objects; and every URL that
GetListingImages returns downloads the right bytes."""

from __future__ import annotations

import hashlib
import json

import pytest

import requests
import zeep
from sqlalchemy import select

from core.clients import upsert_client
from core.db import make_engine, session_factory
from core.models import Listing
from sandbox.photos import photo_bytes
from sandbox.world import World
from tests.support.databases import fresh_database
from tests.support.sandbox import cli, expected, running_world
from tests.support.servers import soap_service

STORED = {"ftpmls", "sftpmls", "httpmls", "retsmls", "sqlmls"}  # strategies that keep photos
LINKED = {"soapmls", "resomls"}                                    # url_template, mls_urls


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with running_world(tmp_path_factory.mktemp("sandbox"), listings=12, seed=11) as world:
        yield world


@pytest.fixture(scope="module")
def deployment(sandbox, s3_server, tmp_path_factory):
    bucket = s3_server.new_bucket("photos")
    tmp = tmp_path_factory.mktemp("db")
    with fresh_database("sqlite", tmp) as url:
        env = {**s3_server.env(), "MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_STORAGE_URL": f"s3://{bucket}/feeds",
               "MLSFEEDS_SECRET_KEY": "e2e", "MLSFEEDS_LOG_LEVEL": "WARNING"}
        cli(env, "sources", "apply", str(sandbox.root / "sources.toml"))
        yield env, session_factory(make_engine(url)), s3_server.store(bucket, "feeds"), url


def run_all(sandbox, env) -> dict[str, dict]:
    for source_id in sorted(sandbox.state["sources"]):
        cli(env, "run", source_id)
    return {row["source"]: row["run"] for row in json.loads(cli(env, "status", "--json").stdout)}


def bucket_photos(store) -> dict[str, str]:
    """{object key: MD5} of every photo in the bucket (ETag is the MD5 of single-part uploads)."""
    return {info.key: info.etag for info in store.list("photos/")}


def wanted_md5s(sandbox, source_id: str) -> dict[str, list[str]]:
    return {key: sorted(p["md5"] for p in fields.get("Photos", []) if not p.get("corrupt"))
            for key, fields in expected(sandbox.root)[source_id].items()}


def stored_md5s(objects: dict[str, str], source_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, md5 in objects.items():
        _, sid, listing_key, _ = key.split("/", 3)
        if sid == source_id:
            found.setdefault(listing_key, []).append(md5)
    return {k: sorted(v) for k, v in found.items()}


def test_the_bucket_holds_exactly_the_expected_photos_byte_for_byte(sandbox, deployment):
    env, sessions, store, _ = deployment
    runs = run_all(sandbox, env)
    objects = bucket_photos(store)
    for source_id in STORED:
        wanted = {k: v for k, v in wanted_md5s(sandbox, source_id).items() if v}
        assert stored_md5s(objects, source_id) == wanted, source_id
        corrupt = sum(p.get("corrupt", False) for f in expected(sandbox.root)[source_id].values() for p in f.get("Photos", []))
        assert runs[source_id]["photos_failed"] >= corrupt, source_id
    assert not any(key.split("/")[1] in LINKED for key in objects), "linked photos are not stored"
    with sessions() as session:  # the SFTP export has no PhotosCount: each listing's is the photos it has
        counts = dict(session.execute(select(Listing.listing_key, Listing.photos_count)
                                      .where(Listing.source_id == "sftpmls")).all())
    assert counts == {key: len(md5s) for key, md5s in wanted_md5s(sandbox, "sftpmls").items()}
    assert max(counts.values()) > 0


def test_a_second_run_uploads_nothing(sandbox, deployment):
    env, _, store, _ = deployment
    before = bucket_photos(store)
    runs = run_all(sandbox, env)
    assert {sid: runs[sid]["photos_stored"] for sid in STORED} == {sid: 0 for sid in STORED}
    assert bucket_photos(store) == before


def test_changed_photos_replace_their_objects(sandbox, deployment):
    env, _, store, _ = deployment
    before = bucket_photos(store)
    report = World.open(sandbox.root).mutate(change_photos=2)
    runs = run_all(sandbox, env)
    after = bucket_photos(store)
    for source_id in STORED:
        changed = report[source_id]["photos"]
        assert changed and runs[source_id]["photos_stored"] > 0, source_id
        wanted = {k: v for k, v in wanted_md5s(sandbox, source_id).items() if v}
        assert stored_md5s(after, source_id) == wanted, source_id
        for listing_key in changed:
            old = {k for k in before if f"/{source_id}/{listing_key}/" in k}
            assert not old & set(after), f"{source_id}/{listing_key}: the replaced objects are gone"


def test_every_url_getlistingimages_returns_downloads_the_right_bytes(sandbox, deployment, tmp_path):
    env, sessions, _, url = deployment
    with sessions() as session:
        upsert_client(session, "ops", "ops-pw", secret_key="e2e", role="operator", all_sources=True)
        session.commit()
        listings = session.execute(select(Listing.source_id, Listing.listing_key).where(
            Listing.photos_count > 0, Listing.removed_at.is_(None)).order_by(Listing.source_id, Listing.listing_key)).all()
    versions = {(sid, r["ListingKey"]): r.get("PhotoVersion", 0)
                for sid, entry in World.open(sandbox.root).state["sources"].items() for r in entry["listings"]}
    with soap_service({**env, "MLSFEEDS_PUBLIC_URL": "http://feeds.example.com"}) as base:
        session = requests.Session()
        session.auth = ("ops", "ops-pw")
        client = zeep.Client(base + "/soap?wsdl", transport=zeep.Transport(session=session))
        service = client.create_service("{urn:mlsfeeds:soap:1}MlsFeeds", base + "/soap")
        checked = 0
        for source_id, listing_key in listings:
            for image in service.GetListingImages(source_id, listing_key) or []:
                body = requests.get(image.Url, timeout=30).content
                wanted = photo_bytes(listing_key, image.Order, versions[(source_id, listing_key)])
                assert hashlib.md5(body).digest() == hashlib.md5(wanted).digest(), (source_id, listing_key, image.Order)
                if source_id in STORED:
                    assert image.Width and image.Height and image.ContentType.startswith("image/")
                checked += 1
    assert checked > 50
