"""The sandbox draws a few pictures once and stamps each photo with its identity: every photo's
bytes are its own and a valid image, at microseconds a photo (a first `make demo` spent most of
its time drawing before)."""

import hashlib
import io

from PIL import Image

from pipeline.images.sniff import sniff
from sandbox import photos


def test_each_photo_is_its_own_valid_image_and_pictures_are_drawn_once():
    photos._picture.cache_clear()
    keys = [(f"L{n:05d}", order, version) for n in range(200) for order in range(1, 6) for version in (0, 1)]
    images = [key for key in keys if photos.kind(*key) != "corrupt"]
    digests = {hashlib.md5(photos.photo_bytes(*key)).hexdigest() for key in images}
    assert len(digests) == len(images), "no two photos share their bytes"
    for key in images[:60]:
        data = photos.photo_bytes(*key)
        info, image = sniff(data), Image.open(io.BytesIO(data))
        image.load()
        assert (info.width, info.height) == image.size
    assert photos._picture.cache_info().misses <= 2 * photos.PICTURES, "each picture drawn once"


def test_the_same_photo_gives_the_same_bytes():
    assert photos.photo_bytes("K1", 3, 2) == photos.photo_bytes("K1", 3, 2) != photos.photo_bytes("K1", 3, 1)
