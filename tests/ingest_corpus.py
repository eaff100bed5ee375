"""Builders of small DICOM/NIfTI/PNG files for the ingestion tests (and a hostile corpus).

Every identity written here is fake; ``PHI`` lists the strings that must never reach an
output.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
)

PATIENT_NAME = "Doe^Johnathan"
PATIENT_ID = "MRN-7734-XYZ"
BIRTH_DATE = "19610407"
UID_ROOT = "1.2.826.0.1.3680043.10.999."
PHI = ("Johnathan", PATIENT_ID, BIRTH_DATE, "Mercy General", UID_ROOT + "77")


def uid(n: int) -> str:
    """A deterministic fake UID (never generated from a real root)."""
    return f"{UID_ROOT}77.{n}"


def base(sop_class: str, sop_uid: str, *, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """Patient, study and SOP common elements with fake identities."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.InstitutionName = "Mercy General"
    ds.StudyInstanceUID = uid(1)
    ds.SeriesInstanceUID = uid(2)
    return ds


def pixels(ds: Dataset, array: np.ndarray, *, signed: bool = False) -> Dataset:
    """Attach a greyscale 16-bit (or 8-bit) pixel array."""
    ds.Rows, ds.Columns = array.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    bits = 8 if array.dtype.itemsize == 1 else 16
    ds.BitsAllocated = bits
    ds.BitsStored = bits if bits == 8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(array).tobytes()
    return ds


def radiograph(n: int, *, size: int = 32, seed: int = 0) -> Dataset:
    """A CR radiograph (12-bit ramp plus noise)."""
    ds = base(ComputedRadiographyImageStorage, uid(1000 + n))
    ds.SeriesInstanceUID = uid(3000 + n)
    ds.Modality = "CR"
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    rng = np.random.default_rng(seed + n)
    ramp = np.linspace(0, 3000, size * size).reshape(size, size)
    return pixels(ds, (ramp + rng.integers(0, 50, (size, size))).astype(np.uint16))


def ct_slice(
    series: int,
    k: int,
    *,
    size: int = 16,
    z: float | None = None,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
) -> Dataset:
    """Axial CT slice ``k`` of a series (2.5 mm apart), HU via rescale."""
    ds = base(CTImageStorage, uid(5000 + 100 * series + k))
    ds.SeriesInstanceUID = uid(4000 + series)
    ds.Modality = "CT"
    ds.ImageType = list(image_type)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-20.0, -20.0, 2.5 * k if z is None else z]
    ds.PixelSpacing = [0.8, 0.8]
    ds.SliceThickness = 2.5
    ds.InstanceNumber = k + 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    values = np.full((size, size), 1024, dtype=np.uint16)
    values[size // 4 : size // 2, size // 4 : size // 2] = 1024 + 40 * k
    return pixels(ds, values)


def save(ds: Dataset, path: Path) -> Path:
    """Write a DICOM file (PS3.10 preamble and file meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_bytes(ds: Dataset) -> bytes:
    """The bytes of a DICOM file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_nifti(path: Path, array: np.ndarray, zooms: tuple[float, ...] = (1.0, 1.0, 2.0)) -> Path:
    """A NIfTI-1 image with a diagonal affine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*zooms[:3], 1.0]) if len(zooms) >= 3 else np.eye(4)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge greyscale image (data is one tiny IDAT)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    """PNG encoding of an array."""
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- hostile corpus

#: Outcome of a file: "ingested", "skip:<rule>", "q:<reason>" (a set: any of them is fine).
Expect = frozenset[str]
Builder = Callable[[Path], None]


def _write(rel: str, data: bytes) -> Builder:
    def build(root: Path) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    return build


def _dicom(rel: str, make: Callable[[], Dataset]) -> Builder:
    return lambda root: _write(rel, dicom_bytes(make()))(root)


def _mutate(ds: Dataset, **values: object) -> Dataset:
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


def _patched(ds: Dataset, old: bytes, new: bytes) -> bytes:
    data = dicom_bytes(ds)
    assert old in data and len(old) == len(new)
    return data.replace(old, new)


def _no_pixels() -> Dataset:
    ds = radiograph(50)
    del ds.PixelData
    return ds


def _sr() -> Dataset:
    ds = base(BasicTextSRStorage, uid(60))
    ds.Modality = "SR"
    return ds


def _rtstruct() -> Dataset:
    ds = base(RTStructureSetStorage, uid(61))
    ds.Modality = "RTSTRUCT"
    ds.StructureSetROISequence = Sequence([Dataset()])
    return ds


def _rgb() -> Dataset:
    ds = base(SecondaryCaptureImageStorage, uid(62))
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8).tobytes()
    return ds


def _palette() -> Dataset:
    ds = pixels(base(SecondaryCaptureImageStorage, uid(63)), np.zeros((8, 8), np.uint8))
    ds.Modality = "OT"
    ds.PhotometricInterpretation = "PALETTE COLOR"
    return ds


def _bad_syntax() -> Dataset:
    ds = radiograph(64)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    return ds


def _j2k_garbage() -> Dataset:
    ds = radiograph(65)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + os.urandom(64)])
    return ds


def _wrong_vr_length(root: Path) -> None:
    data = bytearray(dicom_bytes(radiograph(66)))
    at = data.find(b"\x10\x00\x10\x00PN")  # (0010,0010) PatientName, explicit VR: 2-byte length
    assert at > 0
    data[at + 6 : at + 8] = struct.pack("<H", 0xFFF0)
    _write("dicom/wrong_vr_length.dcm", bytes(data))(root)


def _huge_element_length(root: Path) -> None:
    data = bytearray(dicom_bytes(radiograph(67)))
    at = data.find(b"\xe0\x7f\x10\x00OW")  # PixelData: 4-byte length after 2 reserved bytes
    assert at > 0  # the length says 4 GB, the file holds the 2 kB the image needs
    data[at + 8 : at + 12] = struct.pack("<I", 0xFFFFFFF0)
    _write("dicom/huge_element_length.dcm", bytes(data))(root)


def _odd_pixels() -> Dataset:
    ds = radiograph(68)
    ds.PixelData = ds.PixelData[:-3]
    return ds


def _deflate_corrupt(root: Path) -> None:
    ds = radiograph(69)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = bytearray(dicom_bytes(ds))
    data[-200:] = os.urandom(200)
    _write("dicom/deflate_corrupt.dcm", bytes(data))(root)


def _unclosed_sequence(root: Path) -> None:
    data = dicom_bytes(radiograph(70))
    at = data.find(b"\xe0\x7f\x10\x00")
    seq = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    _write("dicom/unclosed_sequence.dcm", data[:at] + seq + os.urandom(100))(root)


def _symlink_loop(root: Path) -> None:
    (root / "links").mkdir(exist_ok=True)
    (root / "links" / "loop_a").symlink_to("loop_b")
    (root / "links" / "loop_b").symlink_to("loop_a")


def _dangling(root: Path) -> None:
    (root / "links").mkdir(exist_ok=True)
    (root / "links" / "dangling.dcm").symlink_to("does_not_exist.dcm")


def _dir_loop(root: Path) -> None:
    (root / "links").mkdir(exist_ok=True)
    (root / "links" / "parent_loop").symlink_to("..")


def _fifo(root: Path) -> None:
    (root / "special").mkdir(exist_ok=True)
    os.mkfifo(root / "special" / "pipe")


def _no_permission(root: Path) -> None:
    _write("perm/locked.dcm", dicom_bytes(radiograph(71)))(root)
    (root / "perm" / "locked.dcm").chmod(0)


def _locked_dir(root: Path) -> None:
    _write("locked_dir/inside.dcm", dicom_bytes(radiograph(72)))(root)
    (root / "locked_dir").chmod(0)


def _non_utf8_name(root: Path) -> None:
    (root / "names").mkdir(exist_ok=True)
    name = os.fsdecode(b"scan_\xff\xfe.dcm")  # undecodable bytes, kept as surrogates
    (root / "names" / name).write_bytes(dicom_bytes(radiograph(73)))


def _tiff_pages(root: Path) -> None:
    pages = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    _write("raster/multipage.tif", buf.getvalue())(root)


def _nifti(rel: str, array: np.ndarray) -> Builder:
    return lambda root: None if write_nifti(root / rel, array) is None else None


def _nifti_truncated(root: Path) -> None:
    p = write_nifti(root / "nifti/truncated.nii.gz", np.ones((16, 16, 8), np.float32))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _nifti_huge(root: Path) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.int16)
    p = root / "nifti/huge_dims.nii"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64)


def _series_same_position(root: Path) -> None:
    for k, z in enumerate((0.0, 0.0, 2.5)):  # a repeated position that forms no whole volume
        save(ct_slice(20, k, z=z), root / f"series_dup/s{k}.dcm")


def _series_sizes(root: Path) -> None:
    save(ct_slice(21, 0), root / "series_size/s0.dcm")
    save(ct_slice(21, 1, size=24), root / "series_size/s1.dcm")


def _localizer(root: Path) -> None:
    for k in range(2):
        scout = ct_slice(22, k, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
        save(scout, root / f"scout/s{k}.dcm")


def _valid(root: Path) -> None:
    for n in range(3):
        save(radiograph(n), root / f"valid/cr_{n}")  # no extension
    for k in range(4):  # shuffled names, one folder per two slices: grouping ignores folders
        save(ct_slice(1, k), root / f"valid/ct_{k % 2}/{(7 * k) % 5}.dcm")
    write_nifti(
        root / "valid/vol.nii.gz", np.arange(16 * 16 * 4, dtype=np.int16).reshape(16, 16, 4)
    )
    (root / "valid").mkdir(exist_ok=True)
    (root / "valid/xray.png").write_bytes(
        png_bytes(np.tile(np.arange(16, dtype=np.uint8), (16, 1)))
    )
    save(radiograph(0), root / "valid/zz_copy_of_cr_0.dcm")  # byte-identical duplicate
    save(radiograph(74), root / "Doe^Johnathan_19610407.dcm")  # PHI in the file name


def _four_d(root: Path) -> None:
    write_nifti(root / "nifti/four_d.nii.gz", np.ones((8, 8, 4, 3), np.float32))


Q = "q:"
ANY_BAD = frozenset(
    {f"{Q}{r}" for r in ("unreadable", "not_dicom", "truncated_pixel_data", "malformed_header")}
    | {f"{Q}decode_failed", f"{Q}no_pixel_data"}
)


def hostile_corpus(root: Path) -> dict[str, Expect]:
    """Write the corpus under ``root``; return the expected outcome of each relative path.

    Paths that only exist as escaped bytes (the non-UTF-8 name) are keyed by their
    :func:`os.fsdecode` form. Outcomes that depend on running as root (permissions) allow
    both results.
    """
    rng = np.random.default_rng(1)
    cr = dicom_bytes(radiograph(40))
    pix_at = cr.find(b"\xe0\x7f\x10\x00")
    nan = np.ones((8, 8, 4), np.float32)
    nan[1, 1, 1] = np.nan
    inf = np.ones((8, 8, 4), np.float32)
    inf[0, 0, 0] = np.inf
    five = np.ones((4, 4, 4, 2, 2), np.float32)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    root_ok = os.geteuid() == 0
    cases: list[tuple[Builder, dict[str, Expect]]] = [
        (_valid, {}),
        (_write("dicom/empty.dcm", b""), {"dicom/empty.dcm": frozenset({"q:empty_file"})}),
        (_write("dicom/random_noext", rng.bytes(4096)), {"dicom/random_noext": ANY_BAD}),
        (_write("dicom/random.dcm", rng.bytes(777)), {"dicom/random.dcm": ANY_BAD}),
        (_write("dicom/cut_header.dcm", cr[:200]), {"dicom/cut_header.dcm": ANY_BAD}),
        (_write("dicom/cut_pixels.dcm", cr[: pix_at + 100]), {"dicom/cut_pixels.dcm": ANY_BAD}),
        (
            _write("dicom/preamble_junk.dcm", b"\0" * 128 + b"DICM" + rng.bytes(300)),
            {"dicom/preamble_junk.dcm": ANY_BAD},
        ),
        (_wrong_vr_length, {"dicom/wrong_vr_length.dcm": ANY_BAD}),
        (_huge_element_length, {"dicom/huge_element_length.dcm": ANY_BAD | {"ingested"}}),
        (
            _dicom(
                "dicom/huge_dims.dcm", lambda: _mutate(radiograph(41), Rows=65535, Columns=65535)
            ),
            {"dicom/huge_dims.dcm": frozenset({"q:resource_limit"})},
        ),
        (
            _dicom("dicom/huge_frames.dcm", lambda: _mutate(radiograph(42), NumberOfFrames=10**7)),
            {"dicom/huge_frames.dcm": frozenset({"q:resource_limit"})},
        ),
        (
            _dicom("dicom/no_pixels.dcm", _no_pixels),
            {"dicom/no_pixels.dcm": frozenset({"q:no_pixel_data"})},
        ),
        (_dicom("dicom/sr.dcm", _sr), {"dicom/sr.dcm": frozenset({"q:non_image_object"})}),
        (
            _dicom("dicom/rtstruct.dcm", _rtstruct),
            {"dicom/rtstruct.dcm": frozenset({"q:non_image_object"})},
        ),
        (
            _dicom("dicom/burned.dcm", lambda: _mutate(radiograph(43), BurnedInAnnotation="YES")),
            {"dicom/burned.dcm": frozenset({"q:burned_in_annotation"})},
        ),
        (_dicom("dicom/rgb.dcm", _rgb), {"dicom/rgb.dcm": frozenset({"q:colour_image"})}),
        (
            _dicom("dicom/palette.dcm", _palette),
            {"dicom/palette.dcm": frozenset({"q:colour_image"})},
        ),
        (
            _dicom("dicom/mpeg2.dcm", _bad_syntax),
            {"dicom/mpeg2.dcm": frozenset({"q:unsupported_syntax", "q:decode_failed"})},
        ),
        (_dicom("dicom/j2k_garbage.dcm", _j2k_garbage), {"dicom/j2k_garbage.dcm": ANY_BAD}),
        (
            _dicom("dicom/bits_zero.dcm", lambda: _mutate(radiograph(44), BitsAllocated=0)),
            {"dicom/bits_zero.dcm": ANY_BAD},
        ),
        (_dicom("dicom/odd_pixels.dcm", _odd_pixels), {"dicom/odd_pixels.dcm": ANY_BAD}),
        (_deflate_corrupt, {"dicom/deflate_corrupt.dcm": ANY_BAD}),
        (_unclosed_sequence, {"dicom/unclosed_sequence.dcm": ANY_BAD}),
        (
            _write("dicom/bad_spacing.dcm", _patched(radiograph(45), b"0.2\\0.2 ", b"ab\\cd\\ef")),
            {"dicom/bad_spacing.dcm": frozenset({"ingested"}) | ANY_BAD},
        ),
        (
            _series_same_position,
            {f"series_dup/s{k}.dcm": frozenset({"q:inconsistent_geometry"}) for k in range(3)},
        ),
        (
            _series_sizes,
            {f"series_size/s{k}.dcm": frozenset({"q:inconsistent_geometry"}) for k in range(2)},
        ),
        (_localizer, {f"scout/s{k}.dcm": frozenset({"skip:qc_localizer"}) for k in range(2)}),
        (_nifti("nifti/nan.nii.gz", nan), {"nifti/nan.nii.gz": frozenset({"q:non_finite"})}),
        (_nifti("nifti/inf.nii", inf), {"nifti/inf.nii": frozenset({"q:non_finite"})}),
        (_nifti_truncated, {"nifti/truncated.nii.gz": frozenset({"q:unreadable"})}),
        (_nifti_huge, {"nifti/huge_dims.nii": frozenset({"q:resource_limit", "q:unreadable"})}),
        (
            _nifti("nifti/five_d.nii.gz", five),
            {"nifti/five_d.nii.gz": frozenset({"q:unsupported_geometry"})},
        ),
        (_four_d, {"nifti/four_d.nii.gz": frozenset({"ingested"})}),
        (
            _write("raster/cut.png", png_bytes(np.ones((32, 32), np.uint8))[:60]),
            {"raster/cut.png": frozenset({"q:unreadable"})},
        ),
        (
            _write("raster/bomb.png", png_bomb(100_000, 100_000)),
            {"raster/bomb.png": frozenset({"q:resource_limit"})},
        ),
        (
            _write("raster/random.jpg", rng.bytes(500)),
            {"raster/random.jpg": frozenset({"q:unreadable"})},
        ),
        (
            _write("raster/colour.png", png_bytes(rgb)),
            {"raster/colour.png": frozenset({"q:colour_image"})},
        ),
        (_tiff_pages, {"raster/multipage.tif": frozenset({"q:unsupported_geometry"})}),
        (_symlink_loop, {f"links/loop_{x}": frozenset({"q:broken_link"}) for x in "ab"}),
        (_dangling, {"links/dangling.dcm": frozenset({"q:broken_link"})}),
        (_dir_loop, {"links/parent_loop": frozenset({"skip:symlinked_directory"})}),
        (_fifo, {"special/pipe": frozenset({"skip:not_regular_file"})}),
        (
            _no_permission,
            {"perm/locked.dcm": frozenset({"ingested" if root_ok else "q:permission_denied"})},
        ),
        (
            _locked_dir,
            {
                "locked_dir/inside.dcm" if root_ok else "locked_dir": frozenset(
                    {"ingested" if root_ok else "q:unreadable_directory"}
                )
            },
        ),
        (_non_utf8_name, {os.fsdecode(b"names/scan_\xff\xfe.dcm"): frozenset({"ingested"})}),
        (
            _write("DICOMDIR", b"\0" * 132),
            {"DICOMDIR": frozenset({"skip:dicomdir_or_system_file"})},
        ),
        (_write(".hidden/x.dcm", cr), {".hidden/x.dcm": frozenset({"skip:hidden_file"})}),
        (
            _write("a/b/c/d/e/f/g/h/deep.dcm", dicom_bytes(radiograph(46))),
            {"a/b/c/d/e/f/g/h/deep.dcm": frozenset({"ingested"})},
        ),
    ]
    expected: dict[str, Expect] = {
        "valid/cr_0": frozenset({"ingested"}),
        "valid/zz_copy_of_cr_0.dcm": frozenset({"skip:duplicate_instance"}),
        "valid/xray.png": frozenset({"ingested"}),
        "valid/vol.nii.gz": frozenset({"ingested"}),
        "Doe^Johnathan_19610407.dcm": frozenset({"ingested"}),
    }
    root.mkdir(parents=True, exist_ok=True)
    for build, outcome in cases:
        build(root)
        expected.update(outcome)
    return expected


def restore_permissions(root: Path) -> None:
    """Make the corpus deletable again (chmod 0 files and folders)."""
    for p in (root / "perm" / "locked.dcm", root / "locked_dir"):
        if p.exists() or p.is_symlink():
            p.chmod(0o755)
