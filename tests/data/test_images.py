"""read_image on every kind of bad or unusual input, write_image, list_images (all files made in tmp_path)."""
import io
import pickle

import numpy as np
import pytest
from PIL import Image, ImageCms

from tfunmask.data.images import (
    IMAGE_SUFFIXES,
    ImageError,
    list_images,
    read_image,
    write_image,
)


def colour_image(width=48, height=40) -> np.ndarray:
    """A colourful uint8 RGB test card: red, green, blue and white quarters."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2, : width // 2] = (255, 0, 0)
    rgb[: height // 2, width // 2:] = (0, 255, 0)
    rgb[height // 2:, : width // 2] = (0, 0, 255)
    rgb[height // 2:, width // 2:] = (255, 255, 255)
    return rgb


def save(path, image: Image.Image, **options):
    image.save(path, **options)
    return path


def expect_error(path, reason, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as caught:
        read_image(path, **kwargs)
    assert caught.value.reason == reason
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    return caught.value


def test_rgb_jpeg_reads_as_uint8_rgb(tmp_path):
    path = save(tmp_path / "card.jpg", Image.fromarray(colour_image()), quality=95)
    rgb = read_image(path, strict=True)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 48, 3)
    assert np.abs(rgb.astype(int) - colour_image()).mean() < 8


@pytest.mark.parametrize("kept", [0.3, 0.7])  # cut inside the headers / inside the pixel data
def test_truncated_jpeg(tmp_path, kept):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = io.BytesIO()
    Image.fromarray(noise).save(whole, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole.getvalue()[: int(len(whole.getvalue()) * kept)])
    assert "truncated" in str(expect_error(path, "truncated"))


def test_decompression_bomb_is_too_large(tmp_path, monkeypatch):
    path = save(tmp_path / "bomb.png", Image.fromarray(colour_image()))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    expect_error(path, "too_large")


@pytest.mark.parametrize("name, data", [("noise.jpg", np.random.default_rng(0).bytes(2048)),
                                        ("notes.txt", b"just some text\nover two lines\n")])
def test_not_an_image(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    expect_error(path, "not_an_image")


def test_missing_file_folder_and_broken_link_are_unreadable(tmp_path):
    expect_error(tmp_path / "absent.png", "unreadable")
    expect_error(tmp_path, "unreadable")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ImageError, match="broken symbolic link"):
        read_image(tmp_path / "link.jpg")


def test_greyscale_png(tmp_path):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (40, 1))
    path = save(tmp_path / "grey.png", Image.fromarray(grey, "L"))
    rgb = read_image(path)
    assert rgb.shape == (40, 64, 3) and (rgb == grey[..., None]).all()
    assert "mode L" in str(expect_error(path, "greyscale", strict=True))


def test_greyscale_looking_rgb_is_greyscale_when_strict(tmp_path):
    grey = np.repeat(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (40, 1))[..., None], 3, axis=2)
    path = save(tmp_path / "bw.jpg", Image.fromarray(grey), quality=90)
    assert read_image(path).shape == (40, 64, 3)
    expect_error(path, "greyscale", strict=True)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    grey16 = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))
    path = save(tmp_path / "deep.png", Image.fromarray(grey16))
    rgb = read_image(path)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and 120 < rgb[0, 32, 0] < 136


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (48, 40), (0, 255, 255, 0))  # pure red in CMYK
    path = save(tmp_path / "print.jpg", cmyk, quality=95)
    rgb = read_image(path)
    assert rgb.shape == (40, 48, 3)
    assert rgb[..., 0].mean() > 200 and rgb[..., 1:].mean() < 60
    assert (read_image(path, strict=True) == rgb).all()  # training data converts it the same way


@pytest.mark.parametrize("profile", ["srgb", "garbage"])
def test_embedded_icc_profile_is_honoured_or_ignored_when_broken(tmp_path, profile):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() if profile == "srgb" else b"xx"
    path = save(tmp_path / "profiled.png", Image.fromarray(colour_image()), icc_profile=icc)
    assert np.abs(read_image(path).astype(int) - colour_image()).max() <= 3


def test_rgba_png_is_flattened_on_white(tmp_path):
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, 24:, 3] = 255  # left half fully transparent, right half opaque blue
    path = save(tmp_path / "cutout.png", Image.fromarray(rgba, "RGBA"))
    rgb = read_image(path)
    assert (rgb[:, :24] == 255).all() and (rgb[:, 24:] == (0, 0, 255)).all()
    assert (read_image(path, strict=True) == rgb).all()


def test_opaque_rgba_is_fine_when_strict(tmp_path):
    rgba = np.dstack([colour_image(), np.full((40, 48), 255, np.uint8)])
    path = save(tmp_path / "opaque.png", Image.fromarray(rgba, "RGBA"))
    assert (read_image(path, strict=True) == colour_image()).all()


def test_palette_png(tmp_path):
    palette = Image.fromarray(colour_image()).quantize(colors=4)
    path = save(tmp_path / "palette.png", palette)
    assert (read_image(path, strict=True) == colour_image()).all()


def test_palette_png_with_transparency(tmp_path):
    palette = Image.fromarray(colour_image()).quantize(colors=4)
    index_of_red = palette.getpixel((0, 0))
    path = save(tmp_path / "palette_alpha.png", palette, transparency=index_of_red)
    rgb = read_image(path)
    assert (rgb[0, 0] == 255).all() and (rgb[-1, 0] == (0, 0, 255)).all()
    assert (read_image(path, strict=True) == rgb).all()


def test_tiny_image_is_too_small(tmp_path):
    path = save(tmp_path / "tiny.png", Image.fromarray(colour_image(8, 8)))
    assert "8x8" in str(expect_error(path, "too_small"))
    assert read_image(path, min_size=8).shape == (8, 8, 3)


def test_exif_rotation_is_applied(tmp_path):
    rgb = colour_image(64, 40)  # landscape, red top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned, display rotated 90 degrees clockwise
    path = save(tmp_path / "phone.jpg", Image.fromarray(rgb), exif=exif, quality=95)
    upright = read_image(path)
    assert upright.shape == (64, 40, 3)
    assert upright[2, -3, 0] > 200 and upright[2, -3, 1:].max() < 60  # red now top-right
    assert upright[-3, 2].min() > 200  # white now bottom-left


def test_image_error_pickles_with_its_reason():
    error = pickle.loads(pickle.dumps(ImageError("x.jpg: truncated image data", "truncated")))
    assert error.reason == "truncated" and str(error) == "x.jpg: truncated image data"


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_write_image_round_trip_and_parent_folders(tmp_path, suffix):
    path = tmp_path / "a" / "b" / f"card{suffix}"
    write_image(path, colour_image())
    back = read_image(path)
    assert back.shape == (40, 48, 3)
    error = np.abs(back.astype(int) - colour_image())
    assert error.max() == 0 if suffix == ".png" else error.mean() < 6
    assert [file.name for file in path.parent.iterdir()] == [path.name]


def test_write_image_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "card.gifv", colour_image())
    with pytest.raises(ValueError, match="uint8 RGB"):
        write_image(tmp_path / "card.png", colour_image().astype(np.float32))


def test_list_images_folders_files_and_globs(tmp_path):
    for name in ["b.jpg", "a.png", "notes.txt", "sub/c.jpeg", ".hidden.jpg", ".cache/d.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "empty.jpg").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "sub")
    names = [path.relative_to(tmp_path).as_posix() for path in list_images(tmp_path)]
    # every entry is listed for read_image to use or report, except folders that hold something
    assert names == ["a.png", "b.jpg", "broken.jpg", "empty.jpg", "linked", "notes.txt", "sub/c.jpeg"]
    for name in ("broken.jpg", "empty.jpg", "linked"):
        expect_error(tmp_path / name, "unreadable")
        (tmp_path / name).unlink() if name != "empty.jpg" else (tmp_path / name).rmdir()
    assert list_images(str(tmp_path / "*.jpg")) == [tmp_path / "b.jpg"]
    assert list_images([tmp_path / "notes.txt", tmp_path / "a.png", tmp_path]) == [
        tmp_path / "notes.txt", tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "sub" / "c.jpeg"]
    assert ".jpeg" in IMAGE_SUFFIXES


def test_list_images_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        list_images(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no files match"):
        list_images(str(tmp_path / "*.png"))
