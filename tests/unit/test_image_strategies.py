"""The ftp and rets photo strategies' own logic, without sockets: pattern expansion, which files
are read, GetObject IDs, and how the parts of a GetObject reply become photos."""

from __future__ import annotations

import pytest

from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from pipeline.images import ListingPhotos
from pipeline.connectors.logins import Logins
from pipeline.images.ftp import MissingValue, PatternPhotos, PhotoNaming, TooLarge, connected, photo_name
from pipeline.images.rets import MissingKey, Numbering, RetsPhotoSettings, object_id, photos_in_reply
from sandbox.feeds.rets import rets_reply


def listing(count: int = 3, **record) -> ListingPhotos:
    record = {"ListingKey": "K1", "ListingId": "MLS-7", "City": "Naples", **record}
    return ListingPhotos(1, "naples", record["ListingKey"], record["ListingId"], count, record)


# -- ftp: pattern expansion ---------------------------------------------------------------------

@pytest.mark.parametrize("pattern, n, name", [
    ("{ListingId}_{n}.jpg", 3, "MLS-7_3.jpg"),
    ("{ListingKey}/{n0}.jpg", 1, "K1/0.jpg"),
    ("{ListingId}-{n:02d}.JPG", 4, "MLS-7-04.JPG"),
    ("{SourceId}/{City}/{ListingKey}_{n}.png", 12, "naples/Naples/K1_12.png"),
])
def test_a_pattern_names_each_photo_from_the_record_and_its_number(pattern, n, name):
    assert photo_name(pattern, listing(), n) == name


def test_a_field_the_records_do_not_carry_is_a_spec_error():
    with pytest.raises(SourceConfigError, match=r"images.pattern names \{MlsNumber\}"):
        photo_name("{MlsNumber}_{n}.jpg", listing(), 1)


@pytest.mark.parametrize("pattern", ["{City:d}_{n}.jpg", "{0}_{n}.jpg", "{City.upper.x}_{n}"])
def test_a_pattern_the_values_cannot_fill_is_a_spec_error(pattern):
    with pytest.raises(SourceConfigError, match="cannot name photo 1 of K1"):
        photo_name(pattern, listing(), 1)


def test_a_listing_without_a_value_for_the_pattern_fails_alone():
    with pytest.raises(MissingValue):
        photo_name("{City}_{n}.jpg", listing(City=None), 1)
    photos = pattern_photos(FakeFiles({}), PhotoNaming("{City}_{n}.jpg")).photos(listing(City=None))
    assert [(p.order, p.data) for p in photos] == [(1, None)] and "no City" in photos[0].error


@pytest.mark.parametrize("spec, message", [
    ({}, "images.pattern is required"),
    ({"pattern": "{ListingId}.jpg"}, "must hold {n} or {n0}"),
    ({"pattern": "{ListingId_{n}.jpg"}, "not a valid pattern"),
    ({"pattern": "{n}.jpg", "max_photos": 0}, "images.max_photos must be a whole number >= 1"),
])
def test_naming_spec_errors_name_the_images_key(spec, message):
    with pytest.raises(SourceConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PhotoNaming.from_spec(spec)


def test_names_are_paths_in_the_directory():
    naming = PhotoNaming.from_spec({"pattern": "{ListingId}_{n}.jpg", "directory": "/photos/"})
    assert naming.path(listing(), 2) == "/photos/MLS-7_2.jpg"
    assert PhotoNaming("{n}.jpg", directory="").path(listing(), 2) == "2.jpg"


# -- ftp: which files are read --------------------------------------------------------------------

class FakeFiles:
    """RemoteFiles over a dict of path -> bytes; can drop the connection once."""

    def __init__(self, files: dict[str, bytes], drop_once: bool = False):
        self.files, self.drop_once = files, drop_once
        self.reads: list[str] = []
        self.connects = 0

    def connect(self) -> None:
        self.connects += 1

    def close(self) -> None:
        pass

    def read(self, path: str, max_bytes: int) -> bytes | None:
        if self.drop_once:
            self.drop_once = False
            raise SourceUnavailable("ftp://mls: the server closed the connection")
        self.reads.append(path)
        data = self.files.get(path)
        if data is not None and len(data) > max_bytes:
            raise TooLarge(f"{path}: too large")
        return data


def pattern_photos(files: FakeFiles, naming: PhotoNaming) -> PatternPhotos:
    """One connection's PatternPhotos: the fake is what each login connects, every time."""
    return PatternPhotos(Logins(lambda: connected(files), FakeFiles.close, 1, "ftp://mls:21/"), naming)


def files_for(numbers, data=b"photo") -> dict[str, bytes]:
    return {f"/p/MLS-7_{n}.jpg": data + bytes([n]) for n in numbers}


NAMING = PhotoNaming("{ListingId}_{n}.jpg", directory="/p", max_photos=5)


def test_photos_one_to_photos_count_are_read_and_a_missing_one_fails():
    files = FakeFiles(files_for([1, 3]))
    photos = pattern_photos(files, NAMING).photos(listing(count=3))
    assert [(p.order, p.data is not None) for p in photos] == [(1, True), (2, False), (3, True)]
    assert "no file /p/MLS-7_2.jpg" in photos[1].error


def test_without_a_photos_count_files_are_probed_up_to_the_first_missing_one():
    files = FakeFiles(files_for([1, 2, 4]))
    photos = pattern_photos(files, NAMING).photos(listing(count=0))
    assert [p.order for p in photos] == [1, 2] and not any(p.error for p in photos)
    assert files.reads == ["/p/MLS-7_1.jpg", "/p/MLS-7_2.jpg", "/p/MLS-7_3.jpg"]


def test_probing_and_counting_stop_at_max_photos():
    files = FakeFiles(files_for(range(1, 10)))
    assert len(pattern_photos(files, NAMING).photos(listing(count=0))) == 5
    assert len(pattern_photos(files, NAMING).photos(listing(count=9))) == 5


def test_a_file_too_large_is_a_failed_photo():
    naming = PhotoNaming("{ListingId}_{n}.jpg", directory="/p", max_bytes=4)
    photos = pattern_photos(FakeFiles(files_for([1])), naming).photos(listing(count=1))
    assert photos[0].data is None and "too large" in photos[0].error


def test_a_dropped_connection_is_opened_again_once():
    files = FakeFiles(files_for([1, 2]), drop_once=True)
    photos = pattern_photos(files, NAMING).photos(listing(count=2))
    assert [p.data for p in photos] == [b"photo\x01", b"photo\x02"]
    assert files.connects == 2, "the first connection, and the one replacing it"


def test_the_protocol_must_be_known():
    from pipeline.images.ftp import remote_files

    with pytest.raises(SourceConfigError, match="images.protocol"):
        remote_files({"protocol": "scp", "host": "127.0.0.1"})
    with pytest.raises(SourceConfigError, match="images.host is required"):
        remote_files({"protocol": "sftp", "username": "u", "password": "p"})


# -- rets: GetObject IDs ------------------------------------------------------------------------------

def test_the_object_id_asks_for_every_photo_of_the_listing_key():
    assert object_id(listing()) == "K1:*"
    assert object_id(listing(), "ListingId") == "MLS-7:*"
    assert object_id(listing(matrix_id=3091), "matrix_id") == "3091:*"


def test_a_listing_without_a_usable_key_fails_alone():
    with pytest.raises(MissingKey, match="ListingId"):
        object_id(ListingPhotos(1, "naples", "K1", None, 3, {"ListingKey": "K1", "ListingId": None}), "ListingId")
    with pytest.raises(MissingKey):
        object_id(listing(ListingId="A:1"), "ListingId")


def test_an_id_field_the_records_do_not_carry_is_a_spec_error():
    with pytest.raises(SourceConfigError, match="images.id_field 'MLSNumber'"):
        object_id(listing(), "MLSNumber")


def test_rets_spec_defaults_and_errors():
    settings = RetsPhotoSettings.from_spec({"login_url": "http://127.0.0.1:1/login", "username": "u"})
    assert (settings.resource, settings.object_type, settings.id_field, settings.location) == (
        "Property", "Photo", "ListingKey", False)
    assert settings.login.auth == "auto" and settings.login.password == ""
    with pytest.raises(SourceConfigError, match="images.login_url is required"):
        RetsPhotoSettings.from_spec({"username": "u"})
    with pytest.raises(SourceConfigError, match="images.auth"):
        RetsPhotoSettings.from_spec({"login_url": "http://127.0.0.1:1/login", "username": "u", "auth": "ntlm"})
    with pytest.raises(SourceConfigError, match="images.location must be true or false"):
        RetsPhotoSettings.from_spec({"login_url": "http://127.0.0.1:1/login", "username": "u", "location": "yes"})


@pytest.mark.parametrize("ids, orders", [
    (["1", "2", "3"], [1, 2, 3]),
    (["0", "1", "2"], [1, 2, 3]),
    (["2", None, "5"], [2, 3, 5]),
    (["1", "1", "2"], [1, None, 2]),
])
def test_photo_orders_come_from_object_ids(ids, orders):
    numbering = Numbering()
    assert [numbering.order(i) for i in ids] == orders


# -- rets: the parts of a reply ---------------------------------------------------------------------

SETTINGS = RetsPhotoSettings.from_spec({"login_url": "http://127.0.0.1:1/login", "username": "u"})
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 100 + b"\xff\xd9"


def multipart(*parts: tuple[dict[str, str], bytes], boundary: str = "simple boundary") -> bytes:
    body = b""
    for headers, data in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        body += f"--{boundary}\r\n{head}\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def part(number: int, data: bytes = JPEG, **headers: str) -> tuple[dict[str, str], bytes]:
    return {"Content-ID": "K1", "Object-ID": str(number), "Content-Type": "image/jpeg", **headers}, data


def error_part(number: int, code: int) -> tuple[dict[str, str], bytes]:
    return part(number, rets_reply(code, "no"), **{"Content-Type": "text/xml", "RETS-Error": "1"})


def reply_photos(body: bytes, content_type: str = 'multipart/parallel; boundary="simple boundary"',
                 settings: RetsPhotoSettings = SETTINGS, chunk: int = 7):
    chunks = (body[i:i + chunk] for i in range(0, len(body), chunk))
    return photos_in_reply({"Content-Type": content_type}, chunks, settings)


def test_multipart_parts_become_photos_in_order_with_their_description():
    body = multipart(part(1, **{"Content-Description": "Front"}), part(2, JPEG + b"2"))
    photos = reply_photos(body)
    assert [(p.order, p.data, p.caption, p.media_key) for p in photos] == [
        (1, JPEG, "Front", "K1:1"), (2, JPEG + b"2", None, "K1:2")]


def test_a_20403_part_is_skipped_and_another_error_part_is_a_failed_photo():
    photos = reply_photos(multipart(part(1), error_part(2, 20403), error_part(3, 20407), part(4)))
    assert [(p.order, p.error is None) for p in photos] == [(1, True), (3, False), (4, True)]
    assert "20407" in photos[1].error


def test_a_whole_reply_of_20403_is_no_photos_and_another_code_fails_the_source():
    assert reply_photos(rets_reply(20403, "No Object Found"), "text/xml") == []
    with pytest.raises(FeedNotFound, match="20400"):
        reply_photos(rets_reply(20400, "Invalid Resource"), "text/xml")
    with pytest.raises(SourceAuthError, match="20407"):
        reply_photos(rets_reply(20407, "Unauthorized"), "text/xml")


def test_an_error_reply_labelled_as_an_image_is_read_as_the_error_it_is():
    assert reply_photos(rets_reply(20403, "No Object Found"), "image/jpeg") == []
    photos = reply_photos(multipart(part(1), part(2, rets_reply(20403, "gone")), part(3, rets_reply(20409, "busy"))))
    assert [(p.order, p.error is None) for p in photos] == [(1, True), (3, False)]


def test_a_single_object_reply_is_one_photo():
    [photo] = photos_in_reply({"Content-Type": "image/jpeg", "Object-ID": "1"}, iter([JPEG[:10], JPEG[10:]]), SETTINGS)
    assert (photo.order, photo.data) == (1, JPEG)


def test_with_location_the_photos_are_urls_and_a_part_without_one_fails():
    settings = RetsPhotoSettings.from_spec({"login_url": "http://127.0.0.1:1/login", "username": "u",
                                            "location": True})
    body = multipart(part(1, b"", Location="http://127.0.0.1:1/p/1.jpg"), part(2, b""))
    photos = reply_photos(body, settings=settings)
    assert photos[0].url == "http://127.0.0.1:1/p/1.jpg" and photos[0].data is None
    assert photos[1].url is None and "Location" in photos[1].error


def test_an_object_over_max_bytes_fails_and_the_next_still_arrives():
    settings = RetsPhotoSettings.from_spec({"login_url": "http://127.0.0.1:1/login", "username": "u",
                                            "max_bytes": 50})
    photos = reply_photos(multipart(part(1), part(2, b"\xff\xd8" + b"y" * 20)), settings=settings)
    assert "larger than 50 bytes" in photos[0].error and photos[1].data == b"\xff\xd8" + b"y" * 20


def test_a_cut_reply_fails_the_source_as_transient():
    body = multipart(part(1), part(2))
    with pytest.raises(SourceUnavailable, match="cut"):
        reply_photos(body[: len(body) - 30])
