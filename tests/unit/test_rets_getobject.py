import io
import shutil

import pytest

from pipeline.connectors.rets.getobject import objects_in_reply
from pipeline.connectors.rets.multipart import MultipartReader, boundary_of
from pipeline.errors import FeedFormatError, SourceUnavailable
from tests.support.rets_fixtures import chunked, fixture, jpeg_size, recording

RAPATTONI_SIZES = [22148, 30459, 25112]


def objects(relative, chunk_size=4096, headers=None):
    _, recorded, body = recording(relative)
    found = []
    for obj in objects_in_reply(headers or recorded, chunked(body, chunk_size)):
        found.append((obj, obj.body.read()))
    return found


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 4096, 1 << 20])
def test_rapattoni_multipart_gives_three_real_jpegs(chunk_size):
    found = objects("librets/get-object-response-rapattoni.txt", chunk_size)
    assert [len(data) for _, data in found] == RAPATTONI_SIZES
    for obj, data in found:
        assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"
        assert jpeg_size(data) == (401, 300)
        assert obj.content_id == "311602" and obj.content_type == "image/jpeg"
    assert [obj.object_id for obj, _ in found] == ["1", "2", "3"]


def test_parts_are_streamed_not_read_whole_first():
    _, headers, body = recording("librets/get-object-response-rapattoni.txt")
    pulled = 0

    def source():
        nonlocal pulled
        for chunk in chunked(body, 1024):
            pulled += len(chunk)
            yield chunk

    parts = objects_in_reply(headers, source())
    first = next(parts)
    assert pulled < RAPATTONI_SIZES[0] + 4096  # only the first part (and a little more) was read
    assert len(first.body.read()) == RAPATTONI_SIZES[0]
    assert pulled < sum(RAPATTONI_SIZES)
    assert len(list(parts)) == 2  # unread bodies are skipped when moving on


def test_a_body_can_be_copied_as_a_file_object():
    _, headers, body = recording("librets/get-object-response-rapattoni.txt")
    first = next(objects_in_reply(headers, chunked(body, 333)))
    out = io.BytesIO()
    shutil.copyfileobj(first.body.as_file(), out, 1000)
    assert len(out.getvalue()) == RAPATTONI_SIZES[0] and out.getvalue()[:2] == b"\xff\xd8"


def test_location_replies_give_urls_and_descriptions():
    found = objects("librets/get-object-response-multi-location.txt")
    assert [(o.object_id, o.location, o.description, d) for o, d in found] == [
        ("1", "http://www.example.com/images/abc123/1", "Front view.", b""),
        ("2", "http://www.example.com/images/abc123/2", "Rear view.", b""),
        ("3", "http://www.example.com/images/abc123/3", None, b""),
    ]


@pytest.mark.parametrize("chunk_size", [5, 4096])
def test_location_reply_with_bare_line_feeds_and_no_boundary_in_the_header(chunk_size):
    found = objects("refindly/GetObject_multipart_Location1.byte", chunk_size, {"Content-Type": "multipart/parallel"})
    assert len(found) == 41
    assert all(o.location.startswith("http://cdn.resize.sparkplatform.com/") and d == b"" for o, d in found)
    assert [o.object_id for o, _ in found] == [str(n) for n in range(1, 42)]
    assert found[0][0].preferred and not found[1][0].preferred
    assert found[0][0].description == "46"


def test_no_object_parts_are_skipped():
    # Bodies of this recording were damaged when recorded: headers and boundaries only.
    found = objects("refindly/GetObject_multipart.byte", 999, {"Content-Type": "multipart/parallel"})
    assert [o.object_id for o, _ in found] == [str(n) for n in range(9)]  # part 9 was a 20403
    assert all(o.content_type == "image/jpeg" and d for o, d in found)


def test_single_object_reply():
    [(obj, data)] = objects("librets/get-object-response-single.txt")
    assert data[:6] == b"GIF89a" and len(data) == 94
    assert (obj.content_id, obj.object_id, obj.description) == ("abc123", "1", "Front view")


def test_a_whole_reply_of_no_object_is_no_objects():
    assert objects("librets/get-object-response-no-object.txt") == []
    assert list(objects_in_reply({"Content-Type": "image/jpeg"}, [b'<RETS ReplyCode="20403" ReplyText="x"/>'])) == []


def _multipart(*parts: bytes, boundary=b"B") -> bytes:
    return b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"


def test_an_error_part_other_than_no_object_is_an_error_object():
    body = _multipart(b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xd9",
                      b"RETS-Error: 1\r\nContent-Type: text/xml\r\n\r\n<RETS ReplyCode=\"20412\" ReplyText=\"Busy\"/>")
    parts = objects_in_reply({"Content-Type": "multipart/parallel; boundary=B"}, [body])
    assert next(parts).body.read() == b"\xff\xd8\xff\xd9"
    error_part = next(parts)
    with pytest.raises(SourceUnavailable, match="20412"):
        error_part.raise_for_error()


def test_an_xml_object_that_is_not_a_rets_reply_is_an_object():
    body = _multipart(b"Content-Type: text/xml\r\nObject-ID: 1\r\n\r\n<plan><room/></plan>")
    [obj] = objects_in_reply({"Content-Type": "multipart/mixed; boundary=B"}, [body])
    assert obj.body.read() == b"<plan><room/></plan>"


def test_a_cut_transfer_is_transient():
    body = _multipart(b"Content-Type: image/jpeg\r\n\r\n" + b"x" * 5000)[:3000]
    with pytest.raises(SourceUnavailable, match="closing boundary"):
        for part in objects_in_reply({"Content-Type": "multipart/parallel; boundary=B"}, chunked(body, 100)):
            part.body.read()


def test_a_body_without_its_boundary_is_a_format_error():
    with pytest.raises(FeedFormatError, match="no boundary"):
        list(MultipartReader([b"just bytes\r\n"], b"B").parts())


def test_boundaries_with_quotes_and_spaces_are_read():
    assert boundary_of('multipart/parallel; boundary="simple boundary"; charset=utf-8') == b"simple boundary"
    assert boundary_of("multipart/parallel;boundary=abc") == b"abc"
    assert boundary_of("image/jpeg") is None


def test_folded_headers_and_headers_without_spaces():
    body = b"--B\r\nContent-ID:7\r\nContent-Description: a long\r\n  description\r\n\r\nDATA\r\n--B--"
    [(headers, part)] = [(h, b.read()) for h, b in MultipartReader([body], b"B").parts()]
    assert headers["content-id"] == "7" and headers["Content-Description"] == "a long description"
    assert part == b"DATA"


def test_fixture_helper_splits_the_recorded_http_head():
    status, headers, body = recording("librets/get-object-response-rapattoni.txt")
    assert status == 200 and headers["Content-Type"].startswith("multipart/parallel")
    assert body.startswith(b"\r\n--simple boundary")
    assert fixture("refindly/GetObject.byte").stat().st_size > 0


# -- real servers' habits: one reader, whatever the consumer does with a body ------------------------

from pipeline.connectors.rets.session import LoginSettings  # noqa: E402
from pipeline.images.rets import RetsPhotoSettings, photos_in_reply  # noqa: E402

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 10 + b"\n--B not a boundary\r\n--Bx" + b"\xff\xd9"
MULTIPART = {"Content-Type": "multipart/parallel; boundary=B"}
CHUNK_SIZES = [1, 2, 4, 7, 100, 1 << 20]


def _settings(location=False):
    return RetsPhotoSettings(login=LoginSettings(url="http://rets.example/login", username="u", password="p"), location=location)


def _part(object_id, body=JPEG, extra=b"", content_type=b"image/jpeg"):
    return (b"Content-ID: 42\r\nObject-ID: " + object_id + b"\r\nContent-Type: " + content_type + b"\r\n"
            + extra + b"\r\n" + body)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_location_parts_that_still_carry_bytes_give_one_link_each(chunk_size):
    body = _multipart(*[_part(str(n).encode(), extra=b"Location: http://cdn.example/42/%d.jpg\r\n" % n)
                        for n in (1, 2, 3)])
    objects = list(objects_in_reply(MULTIPART, chunked(body, chunk_size)))  # bodies never read
    assert [(o.object_id, o.location) for o in objects] == [(str(n), f"http://cdn.example/42/{n}.jpg") for n in (1, 2, 3)]
    photos = photos_in_reply(MULTIPART, chunked(body, chunk_size), _settings(location=True))
    assert [(p.order, p.url, p.data, p.error) for p in photos] == [
        (n, f"http://cdn.example/42/{n}.jpg", None, None) for n in (1, 2, 3)]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_a_repeated_object_id_is_skipped_whole_and_the_next_part_is_intact(chunk_size):
    repeated = b"\xff\xd8" + b"\x01" * 2755  # the 2,757 bytes that once became a photo of their own
    body = _multipart(_part(b"1"), _part(b"1", repeated), _part(b"2"))
    assert [len(o.body.read()) for o in objects_in_reply(MULTIPART, chunked(body, chunk_size))] == [
        len(JPEG), 2757, len(JPEG)]
    photos = photos_in_reply(MULTIPART, chunked(body, chunk_size), _settings())
    assert [(p.order, p.data) for p in photos] == [(1, JPEG), (2, JPEG)]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_a_body_abandoned_half_read_does_not_leak_into_the_next_part(chunk_size):
    body = _multipart(_part(b"1"), _part(b"2"))
    objects = objects_in_reply(MULTIPART, chunked(body, chunk_size))
    first = next(objects)
    chunks = first.body.iter_bytes()
    next(chunks)
    chunks.close()  # the consumer gives up on this body: the reader still owns the position
    second = next(objects)
    assert second.object_id == "2" and second.body.read() == JPEG
    with pytest.raises(RuntimeError, match="moved on"):
        first.body.read()


def test_headers_that_run_into_the_next_boundary_make_a_part_without_a_body():
    body = (b"--B\r\nObject-ID: 1\r\nLocation: http://cdn.example/1.jpg\r\n--B\r\n"
            b"Object-ID: 2\r\nLocation: http://cdn.example/2.jpg\r\n\r\n\r\n--B--\r\n")
    assert [(o.object_id, o.body.read()) for o in objects_in_reply(MULTIPART, [body])] == [("1", b""), ("2", b"")]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_an_xml_part_with_reply_code_zero_and_a_location_is_a_linked_object(chunk_size):
    reply = b'<?xml version="1.0"?>\r\n<RETS ReplyCode="0" ReplyText="Success"/>'
    body = _multipart(_part(b"1"), _part(b"2", reply, b"Location: http://cdn.example/42/2.jpg\r\n", b"text/xml"))
    objects = [(o.object_id, o.linked, o.location, o.body.read()) for o in objects_in_reply(MULTIPART, chunked(body, chunk_size))]
    assert objects == [("1", False, None, JPEG), ("2", True, "http://cdn.example/42/2.jpg", b"")]
    photos = photos_in_reply(MULTIPART, chunked(body, chunk_size), _settings())
    assert [(p.order, p.data is not None, p.url, p.error) for p in photos] == [
        (1, True, None, None), (2, False, "http://cdn.example/42/2.jpg", None)]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 4096])
@pytest.mark.parametrize("content_type", ["image/jpeg", "text/xml", "application/octet-stream"])
def test_an_error_reply_with_an_xml_declaration_is_an_error_in_both_readers(chunk_size, content_type):
    reply = b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n<RETS ReplyCode="20412" ReplyText="Busy"/>'
    headers = {"Content-Type": content_type}
    with pytest.raises(SourceUnavailable, match="20412"):
        list(objects_in_reply(headers, chunked(reply, chunk_size)))
    with pytest.raises(SourceUnavailable, match="20412"):
        photos_in_reply(headers, chunked(reply, chunk_size), _settings())


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 4096])
def test_no_object_replies_in_tiny_chunks_are_no_objects_in_both_readers(chunk_size):
    reply = b'<?xml version="1.0" ?>\r\n<RETS ReplyCode="20403" ReplyText="No Object Found"/>\r\n'
    assert list(objects_in_reply({"Content-Type": "image/jpeg"}, chunked(reply, chunk_size))) == []
    assert photos_in_reply({"Content-Type": "image/jpeg"}, chunked(reply, chunk_size), _settings()) == []
    body = _multipart(_part(b"1"), _part(b"2", reply, b"RETS-Error: 1\r\n", b"text/xml"))
    assert [o.object_id for o in objects_in_reply(MULTIPART, chunked(body, chunk_size))] == ["1"]
    assert [p.order for p in photos_in_reply(MULTIPART, chunked(body, chunk_size), _settings())] == [1]


def test_captions_come_from_description_headers_and_repeated_headers_are_all_kept():
    body = _multipart(
        _part(b"1", extra=b"Location: http://cdn.example/1.jpg\r\nDescription: Pool at dusk\r\n"
                          b"ObjectData: PhotoTimestamp=2026-05-01T10:00:00\r\nObjectData: Rotation=90\r\n"),
        _part(b"2", extra=b"Location: http://cdn.example/2.jpg\r\nContent-Description: Kitchen\r\n"))
    first, second = objects_in_reply(MULTIPART, [body])
    assert first.description == "Pool at dusk" and second.description == "Kitchen"
    assert first.headers.get_all("ObjectData") == ["PhotoTimestamp=2026-05-01T10:00:00", "Rotation=90"]
    assert first.object_data == {"PhotoTimestamp": "2026-05-01T10:00:00", "Rotation": "90"}
    photos = photos_in_reply(MULTIPART, [body], _settings(location=True))
    assert [p.caption for p in photos] == ["Pool at dusk", "Kitchen"]


RECORDINGS = [  # (recording, Content-Type to use when the recording has no HTTP head, objects, photos)
    ("librets/get-object-response-rapattoni.txt", None, 3, 3),
    ("librets/get-object-response-multi-location.txt", None, 3, 3),
    ("librets/get-object-response-single.txt", None, 1, 1),
    ("librets/get-object-response-no-object.txt", None, 0, 0),
    ("refindly/GetObject_multipart.byte", "multipart/parallel", 9, 9),
    ("refindly/GetObject_multipart_Location1.byte", "multipart/parallel", 41, 41),
]


@pytest.mark.parametrize("chunk_size", [3, 4096])
@pytest.mark.parametrize("relative, content_type, objects, photos", RECORDINGS)
def test_every_recorded_reply_gives_the_same_objects_to_both_readers(relative, content_type, objects, photos, chunk_size):
    _, headers, body = recording(relative)
    headers = {"Content-Type": content_type} if content_type else headers
    found = list(objects_in_reply(headers, chunked(body, chunk_size)))
    location = any(o.location for o in found)
    got = photos_in_reply(headers, chunked(body, chunk_size), _settings(location=location))
    assert (len(found), len(got)) == (objects, photos)
    assert all(p.error is None for p in got)
    assert [p.order for p in got] == list(range(1, photos + 1))
