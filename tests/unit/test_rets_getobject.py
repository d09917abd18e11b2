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


def test_an_error_part_other_than_no_object_raises_its_error():
    body = _multipart(b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xd9",
                      b"RETS-Error: 1\r\nContent-Type: text/xml\r\n\r\n<RETS ReplyCode=\"20412\" ReplyText=\"Busy\"/>")
    parts = objects_in_reply({"Content-Type": "multipart/parallel; boundary=B"}, [body])
    assert next(parts).body.read() == b"\xff\xd8\xff\xd9"
    with pytest.raises(SourceUnavailable, match="20412"):
        next(parts)


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
