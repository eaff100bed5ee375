"""MONAI bundle export: same network output, valid metadata, runnable inference config."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch

from medssl.audit import package_versions
from medssl.data.transforms import preprocess
from medssl.export import bundle as mb
from medssl.export.card import CardInfo, bundle_metadata, model_card
from medssl.models.encoders import ENCODERS
from medssl.train.finetune import build_classifier

HAS_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None
HAS_FIRE = importlib.util.find_spec("fire") is not None


def _trained_like(encoder: str, dims: int, small: bool) -> torch.nn.Module:
    """A classifier with random (seeded) weights and BatchNorm statistics that are not 0/1."""
    torch.manual_seed(1)
    model = build_classifier(encoder, dims, small, None)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)  # type: ignore[operator]
            m.running_var.uniform_(0.5, 1.5)  # type: ignore[operator]
    return model.eval()


@pytest.mark.parametrize(
    ("encoder", "dims", "small", "size"),
    [("resnet18", 2, False, 64), ("resnet18", 2, True, 32), ("resnet18", 3, True, 16),
     ("densenet121", 2, False, 32)],
)  # fmt: skip
def test_native_export_gives_the_same_logits(
    encoder: str, dims: int, small: bool, size: int
) -> None:
    torch.set_num_threads(1)
    model = _trained_like(encoder, dims, small)
    spec = mb.network_spec(encoder, dims, small)
    assert spec.config["_target_"].startswith("monai.networks.nets.")
    net = mb.exported_network(spec)
    net.load_state_dict(mb.convert_state_dict(model.state_dict(), spec))  # strict
    assert mb.check_equivalent(model, net, (2, 1, *[size] * dims)) < 1e-5


def test_other_encoders_keep_the_medssl_network() -> None:
    others = sorted(set(ENCODERS) - set(mb.MONAI_NATIVE))
    if not others:
        pytest.skip("every encoder exports natively")
    spec = mb.network_spec(others[0], 2, True)
    assert spec.config["_target_"] == "medssl.train.finetune.build_classifier"
    assert spec.rename("head.weight") == "head.weight"


def test_check_equivalent_rejects_different_weights() -> None:
    a, b = _trained_like("resnet18", 2, True), build_classifier("resnet18", 2, True, None)
    with pytest.raises(ValueError, match="differs"):
        mb.check_equivalent(a, b, (1, 1, 16, 16))


def _metadata(threshold: float | None = 0.4) -> dict[str, Any]:
    info = _card_info(threshold)
    return bundle_metadata(
        info,
        versions=package_versions(),
        authors="tests",
        copyright_="(c) tests",
        network_data_format=mb.network_data_format(2, 32, "xray", "DX"),
        packages={"nibabel": "5"},
    )


def _card_info(threshold: float | None) -> CardInfo:
    return CardInfo(
        name="test_bundle",
        version="0.1.0",
        intended_use="Tests only.",
        model={"encoder": "resnet18", "spatial_dims": 2, "image_size": 32, "method": "simclr",
               "arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0},
        data={"images": 10, "patients": 5, "modalities": {"DX (2D)": 10},
              "per_split": {"test": {"patients": 2, "images": 4, "labelled": 4, "abnormal": 2}}},
        metrics={"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0, "auroc": 0.8,
                 "auroc_ci_low": 0.6, "auroc_ci_high": 0.95},
        threshold=threshold,
        deid_profile="medssl-deid/1",
        demo=True,
    )  # fmt: skip


def test_metadata_check() -> None:
    meta = _metadata()
    assert mb.check_metadata(meta) == []
    del meta["copyright"]
    meta["version"] = 1
    meta["network_data_format"]["inputs"]["image"]["num_channels"] = "one"
    del meta["network_data_format"]["outputs"]["pred"]["dtype"]
    assert sorted(mb.check_metadata(meta)) == [
        "inputs.image.num_channels: expected integer, got str",
        "metadata.version: expected string, got int",
        "metadata: missing key 'copyright'",
        "outputs.pred: missing key 'dtype'",
    ]


def _write_bundle(root: Path, threshold: float | None) -> tuple[Path, torch.nn.Module]:
    model = _trained_like("resnet18", 2, False)
    spec = mb.network_spec("resnet18", 2, False)
    inference = mb.inference_config(spec, mb.preprocessing_config(32, 2, "xray"), threshold)
    out = root / "bundle"
    mb.write_bundle(
        out, mb.convert_state_dict(model.state_dict(), spec), _metadata(threshold), inference,
        model_card(_card_info(threshold)),
    )  # fmt: skip
    return out, model


def _image(path: Path) -> Path:
    data = np.random.default_rng(0).random((40, 36)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_bundle_layout_and_inference_match_medssl(tmp_path: Path) -> None:
    from monai.bundle import run

    torch.set_num_threads(1)
    bundle, model = _write_bundle(tmp_path, threshold=0.4)
    for rel in (mb.METADATA_NAME, mb.INFERENCE_NAME, mb.WEIGHTS_NAME, mb.CARD_NAME, mb.SCHEMA_NAME):
        assert (bundle / rel).is_file(), rel
    image = _image(tmp_path / "x.nii.gz")
    out = tmp_path / "pred" / "p.json"
    grad = torch.is_grad_enabled()
    try:
        run(
            config_file=str(bundle / mb.INFERENCE_NAME), meta_file=str(bundle / mb.METADATA_NAME),
            logging_file=False, bundle_root=str(bundle), image=str(image), output=str(out),
        )  # fmt: skip
    finally:
        torch.set_grad_enabled(grad)  # the bundle's `initialize` turns autograd off globally
    verdict = json.loads(out.read_text())
    x = torch.as_tensor(preprocess(32, 2, "xray")({"image": str(image)})["image"])[None]
    with torch.no_grad():
        expected = float(torch.sigmoid(model(x)).reshape(-1)[0])
    assert verdict["probability"] == pytest.approx(expected, abs=1e-6)
    assert verdict["threshold"] == 0.4
    assert verdict["abnormal"] is (expected >= 0.4)


#: Real CT and MR volumes (TotalSegmentator test files), beside the repository when present.
VOLUMES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "volumes"


def _bundle_preprocessing(root: Path, size: int, dims: int, intensity: str, modality: str) -> Any:
    """Write a bundle for ``(size, dims, intensity)``; its ``preprocessing`` as MONAI parses it."""
    from monai.bundle import ConfigParser

    spec = mb.network_spec("resnet18", dims, True)
    inference = mb.inference_config(spec, mb.preprocessing_config(size, dims, intensity), 0.5)
    metadata = bundle_metadata(
        _card_info(0.5), versions=package_versions(), authors="tests", copyright_="(c) tests",
        network_data_format=mb.network_data_format(dims, size, intensity, modality),
        packages={"nibabel": "5"},
    )  # fmt: skip
    mb.write_bundle(root, {}, metadata, inference, "card")
    parser = ConfigParser()
    parser.read_config(root / mb.INFERENCE_NAME)
    return parser.get_parsed_content("preprocessing")


def _assert_same_preprocessing(
    root: Path, image: Path, size: int, dims: int, intensity: str, modality: str
) -> torch.Tensor:
    """Training-side :func:`preprocess` and the written bundle's give identical tensors."""
    train = preprocess(size, dims, intensity)
    exported = _bundle_preprocessing(root, size, dims, intensity, modality)
    assert [type(t) for t in exported.transforms] == [type(t) for t in train.transforms]
    a = torch.as_tensor(train({"image": str(image)})["image"])
    b = torch.as_tensor(exported({"image": str(image)})["image"])
    assert a.shape == (1, *[size] * dims) and a.dtype == b.dtype == torch.float32
    assert torch.equal(a, b)
    return a


def _synthetic(kind: str, path: Path) -> Path:
    """A small NIfTI: a [0, 1] radiograph, a HU CT volume or a [0, 1] MR volume.

    Values reach past each preset's window, so clipping is exercised; voxels are anisotropic.
    """
    rng = np.random.default_rng(7)
    if kind == "xray":
        data = rng.uniform(-0.05, 1.05, (40, 36)).astype(np.float32)
        affine = np.diag([0.2, 0.2, 1.0, 1.0])
    elif kind == "ct":
        data = rng.integers(-1024, 3071, (30, 26, 14)).astype(np.int16)
        affine = np.diag([0.7, 0.7, 2.5, 1.0])
    else:
        data = rng.uniform(0.0, 1.1, (28, 24, 12)).astype(np.float32)
        affine = np.diag([1.0, 1.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.mark.parametrize(
    ("kind", "dims", "intensity", "modality"),
    [("xray", 2, "xray", "DX"), ("ct", 3, "ct_lung", "CT"), ("ct", 3, "ct_soft_tissue", "CT"),
     ("ct", 3, "ct_full", "CT"), ("mr", 3, "mr", "MR")],
)  # fmt: skip
def test_bundle_preprocessing_equals_training_preprocessing(
    tmp_path: Path, kind: str, dims: int, intensity: str, modality: str
) -> None:
    torch.set_num_threads(1)
    image = _synthetic(kind, tmp_path / f"{kind}.nii.gz")
    out = _assert_same_preprocessing(tmp_path / "bundle", image, 16, dims, intensity, modality)
    assert 0.0 <= float(out.min()) < float(out.max()) <= 1.0


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "intensity", "modality"),
    [("example_ct.nii.gz", "ct_soft_tissue", "CT"), ("example_ct_sm.nii.gz", "ct_full", "CT"),
     ("example_mr_sm.nii.gz", "mr", "MR")],
)  # fmt: skip
def test_bundle_preprocessing_equals_training_on_real_volumes(
    tmp_path: Path, name: str, intensity: str, modality: str
) -> None:
    source = VOLUMES / name
    if not source.is_file():
        pytest.skip(f"{source} absent (real volumes live in ../shared/data/volumes)")
    torch.set_num_threads(1)
    image = source
    if intensity == "mr":  # ingested MR is in [0, 1]: scale by the 99th percentile, as-is above
        img = nib.load(source)
        data = np.asarray(img.get_fdata(dtype=np.float32))
        image = tmp_path / "mr.nii.gz"
        nib.save(nib.Nifti1Image(data / np.percentile(data, 99), img.affine), image)
    out = _assert_same_preprocessing(tmp_path / "bundle", image, 32, 3, intensity, modality)
    assert float(out.std()) > 0.01


@pytest.mark.skipif(not HAS_JSONSCHEMA, reason="jsonschema not installed")
def test_monai_verify_metadata_accepts_the_metadata(tmp_path: Path) -> None:
    from monai.bundle import verify_metadata

    bundle, _ = _write_bundle(tmp_path, threshold=None)
    schema = str(bundle / mb.SCHEMA_NAME)
    verify_metadata(meta_file=str(bundle / mb.METADATA_NAME), filepath=schema)
    bad = json.loads((bundle / mb.METADATA_NAME).read_text())
    del bad["network_data_format"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="network_data_format"):
        verify_metadata(meta_file=str(tmp_path / "bad.json"), filepath=schema)


@pytest.mark.skipif(not (HAS_JSONSCHEMA and HAS_FIRE), reason="jsonschema or fire not installed")
def test_monai_bundle_cli_verify_metadata(tmp_path: Path) -> None:
    bundle, _ = _write_bundle(tmp_path, threshold=None)
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata",
         "--meta_file", str(bundle / mb.METADATA_NAME), "--filepath", str(bundle / mb.SCHEMA_NAME)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_export_record_choice() -> None:
    records = [
        {"arm": "ssl", "mode": "linear", "n_labels": 40, "seed": 0},
        {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 1},
        {"arm": "ssl", "mode": "full", "n_labels": 24, "seed": 1},
        {"arm": "ssl", "mode": "full", "n_labels": 24, "seed": 0},
        {"arm": "scratch", "mode": "full", "n_labels": 40, "seed": 0},
    ]
    assert mb.export_record(records, "ssl") == records[3]
    with pytest.raises(ValueError, match="no 'pixels' run"):
        mb.export_record(records, "pixels")
