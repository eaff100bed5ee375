"""The fine-tuned classifier as a MONAI bundle (MONAI Bundle Specification, MB format).

Layout written by :func:`write_bundle`::

    configs/metadata.json     versions, task, intended use, data, network_data_format
    configs/inference.json    one image in, ``{"probability", "abnormal", ...}`` JSON out
    models/model.pt           state_dict of the network named in inference.json
    docs/README.md            the model card
    docs/metadata_schema.json JSON Schema of the specification's mandatory keys

ResNet and DenseNet-121 classifiers are exported as plain MONAI networks
(``monai.networks.nets.resnet18(..., num_classes=1)``, ``DenseNet121(out_channels=1)``):
their weights are the medssl :class:`~medssl.train.finetune.Classifier` weights with keys
renamed, so the bundle runs with MONAI alone. Other encoders keep the medssl network
(``medssl.train.finetune.build_classifier``) and need medssl installed.

Inference config (MONAI config syntax, run by ``monai.bundle.run`` or
``python -m monai.bundle run``): ``initialize`` loads the weights, ``run`` reads
``@image``, applies the preprocessing of training, a sigmoid, and writes ``@output``. The
``preprocessing`` component is generated from the single definition of the training
preprocessing (:func:`medssl.data.transforms.preprocessing_steps`, re-exported here as
:func:`preprocessing_config`), never written by hand.

Reference: MONAI Bundle Specification, docs.monai.io/en/stable/mb_specification.html
(metadata.json mandatory keys and tensor format specifiers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medssl.data.transforms import INTENSITY_WINDOWS
from medssl.data.transforms import preprocessing_config as preprocessing_config

#: The MONAI metadata schema that MONAI >= 1.4 bundles name (``required_packages_version``).
BUNDLE_SCHEMA_URL = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
    "meta_schema_20240725.json"
)
METADATA_NAME = "configs/metadata.json"
INFERENCE_NAME = "configs/inference.json"
WEIGHTS_NAME = "models/model.pt"
CARD_NAME = "docs/README.md"
SCHEMA_NAME = "docs/metadata_schema.json"

_TENSOR_KEYS = ("type", "format", "modality", "num_channels", "spatial_shape", "dtype")
_TENSOR_KEYS_ALL = (*_TENSOR_KEYS, "value_range", "is_patch_data", "channel_def")
#: Mandatory metadata keys of the MONAI Bundle Specification, as MONAI's 2024-07-25 metadata
#: schema names them (``required_packages_version`` replaced ``optional_packages_version``).
MANDATORY_KEYS = (
    "schema",
    "version",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "required_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
)

_TENSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": list(_TENSOR_KEYS_ALL),
    "properties": {
        "type": {"type": "string"},
        "format": {"type": "string"},
        "modality": {"type": "string"},
        "num_channels": {"type": "integer", "minimum": 1},
        "spatial_shape": {"type": "array", "items": {"type": ["integer", "string"]}},
        "dtype": {"type": "string"},
        "value_range": {"type": "array", "items": {"type": "number"}, "maxItems": 2},
        "is_patch_data": {"type": "boolean"},
        "channel_def": {"type": "object"},
    },
}

#: JSON Schema (draft-07) of the specification's mandatory keys and tensor specifiers,
#: shipped in the bundle so ``verify_metadata --filepath`` works offline. It asks for every
#: key and type that MONAI's published schema (:data:`BUNDLE_SCHEMA_URL`) asks for, and more
#: (``changelog``, ``intended_use``, and ``modality``, ``is_patch_data``, ``channel_def`` of
#: each tensor).
METADATA_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "MONAI bundle metadata.json (mandatory keys of the MONAI Bundle Specification)",
    "type": "object",
    "required": [*MANDATORY_KEYS, "changelog", "intended_use"],
    "properties": {
        "schema": {"type": "string"},
        "version": {"type": "string"},
        "changelog": {"type": "object"},
        "monai_version": {"type": "string"},
        "pytorch_version": {"type": "string"},
        "numpy_version": {"type": "string"},
        "required_packages_version": {"type": "object"},
        "task": {"type": "string"},
        "description": {"type": "string"},
        "authors": {"type": "string"},
        "copyright": {"type": "string"},
        "intended_use": {"type": "string"},
        "data_source": {"type": "string"},
        "data_type": {"type": "string"},
        "references": {"type": "array", "items": {"type": "string"}},
        "eval_metrics": {"type": "object"},
        "network_data_format": {
            "type": "object",
            "required": ["inputs", "outputs"],
            "properties": {
                "inputs": {"type": "object", "additionalProperties": _TENSOR_SCHEMA},
                "outputs": {"type": "object", "additionalProperties": _TENSOR_SCHEMA},
            },
        },
    },
}


@dataclass(frozen=True)
class NetworkSpec:
    """How a medssl classifier is exported.

    Attributes:
        config: the ``network_def`` component of inference.json (``_target_`` + kwargs).
        rename: maps a :class:`~medssl.train.finetune.Classifier` state_dict key to the
            exported network's key.
    """

    config: dict[str, Any]
    rename: Callable[[str], str]


def _resnet_rename(key: str) -> str:
    if key.startswith("encoder."):
        return key[len("encoder.") :]
    return {"head.weight": "fc.weight", "head.bias": "fc.bias"}.get(key, key)


def _densenet_rename(key: str) -> str:
    if key.startswith("encoder.features."):
        return key[len("encoder.") :]
    head = {"head.weight": "class_layers.out.weight", "head.bias": "class_layers.out.bias"}
    return head.get(key, key)


def _resnet_config(name: str, dims: int, small: bool) -> dict[str, Any]:
    return {
        "_target_": f"monai.networks.nets.{name}",
        "spatial_dims": dims,
        "n_input_channels": 1,
        "num_classes": 1,
        "feed_forward": True,
        "conv1_t_size": 3 if small else 7,
        "conv1_t_stride": 1 if small else 2,
        "no_max_pool": small,
    }


def _densenet_config(name: str, dims: int, small: bool) -> dict[str, Any]:
    return {
        "_target_": "monai.networks.nets.DenseNet121",
        "spatial_dims": dims,
        "in_channels": 1,
        "out_channels": 1,
    }


#: Encoder name -> (network_def builder, key renaming) for MONAI-native export.
MONAI_NATIVE: dict[str, tuple[Callable[[str, int, bool], dict[str, Any]], Callable[[str], str]]] = {
    "resnet18": (_resnet_config, _resnet_rename),
    "resnet34": (_resnet_config, _resnet_rename),
    "resnet50": (_resnet_config, _resnet_rename),
    "densenet121": (_densenet_config, _densenet_rename),
}


def network_spec(encoder: str, spatial_dims: int, small_input: bool) -> NetworkSpec:
    """The exported network for a medssl encoder.

    Args:
        encoder: key of :data:`medssl.models.encoders.ENCODERS`.
        spatial_dims: 2 or 3.
        small_input: small-image stem.

    Returns:
        A MONAI-native spec for :data:`MONAI_NATIVE` encoders, else the medssl classifier.
    """
    if encoder in MONAI_NATIVE:
        build, rename = MONAI_NATIVE[encoder]
        return NetworkSpec(build(encoder, spatial_dims, small_input), rename)
    config = {
        "_target_": "medssl.train.finetune.build_classifier",
        "encoder_name": encoder,
        "spatial_dims": spatial_dims,
        "small_input": small_input,
        "init": None,
    }
    return NetworkSpec(config, lambda key: key)


def convert_state_dict(
    state: Mapping[str, torch.Tensor], spec: NetworkSpec
) -> dict[str, torch.Tensor]:
    """Rename a classifier ``state_dict`` for the exported network (tensors are cloned)."""
    out = {spec.rename(k): v.detach().clone() for k, v in state.items()}
    if len(out) != len(state):
        raise ValueError("state_dict keys collide after renaming for the bundle network")
    return out


def inference_config(
    spec: NetworkSpec,
    preprocessing: Mapping[str, Any],
    threshold: float | None,
) -> dict[str, Any]:
    """``configs/inference.json``: one image in, a JSON verdict out.

    Override ``image`` (a NIfTI written by medssl ingestion) and ``output`` (a JSON path)
    on the command line. The threshold is the operating point frozen on validation (90 %
    specificity); ``abnormal`` is ``probability >= threshold``.

    Args:
        spec: from :func:`network_spec`.
        preprocessing: from :func:`preprocessing_config`.
        threshold: decision threshold, or ``None`` when validation could not fix one.

    Returns:
        The config mapping.
    """
    return {
        "imports": ["$import json", "$import pathlib", "$import torch"],
        "bundle_root": ".",
        "image": "",
        "output": "$@bundle_root + '/eval/prediction.json'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "threshold": threshold,
        "network_def": dict(spec.config),
        "network": "$@network_def.to(@device)",
        "preprocessing": dict(preprocessing),
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "Activations", "sigmoid": True},
        "initialize": [
            "$torch.set_grad_enabled(False)",
            "$@network.load_state_dict(torch.load(@bundle_root + '/models/model.pt', "
            "map_location=@device, weights_only=True))",
            "$@network.eval()",
        ],
        "batch": "$@preprocessing({'image': @image})['image'][None].to(@device)",
        "probability": "$float(@postprocessing(@inferer(@batch, @network)).flatten()[0])",
        "verdict": {
            "probability": "@probability",
            "threshold": "@threshold",
            "abnormal": "$None if @threshold is None else @probability >= @threshold",
        },
        "run": [
            "$pathlib.Path(@output).parent.mkdir(parents=True, exist_ok=True)",
            "$pathlib.Path(@output).write_text(json.dumps(@verdict, indent=1))",
        ],
    }


def network_data_format(
    spatial_dims: int, image_size: int, intensity: str, modality: str
) -> dict[str, Any]:
    """Tensor format specifiers of the classifier's input and output (MB specification)."""
    a_min, a_max = INTENSITY_WINDOWS[intensity]
    source = "presentation values" if intensity in ("xray", "mr") else "Hounsfield units"
    return {
        "inputs": {
            "image": {
                "type": "image",
                "format": "hounsfield" if source == "Hounsfield units" else "magnitude",
                "modality": modality,
                "num_channels": 1,
                "spatial_shape": [image_size] * spatial_dims,
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": {"0": f"image: {source} [{a_min}, {a_max}] scaled to [0, 1]"},
            }
        },
        "outputs": {
            "pred": {
                "type": "probabilities",
                "format": "classes",
                "modality": "n/a",
                "num_channels": 1,
                "spatial_shape": [1],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": {"0": "probability of the abnormal class"},
            }
        },
    }


def check_metadata(meta: Mapping[str, Any]) -> list[str]:
    """Problems of a metadata mapping against :data:`METADATA_SCHEMA` (no jsonschema needed).

    Checks required keys, value types of the top-level keys and every tensor specifier.

    Returns:
        One message per problem (empty when valid).
    """
    problems = _check_object(meta, METADATA_SCHEMA, "metadata")
    ndf = meta.get("network_data_format")
    if isinstance(ndf, Mapping):
        for side in ("inputs", "outputs"):
            for name, tensor in (ndf.get(side) or {}).items():
                problems += _check_object(tensor, _TENSOR_SCHEMA, f"{side}.{name}")
    return problems


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _check_object(value: Any, schema: Mapping[str, Any], where: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: expected an object"]
    out = [f"{where}: missing key '{k}'" for k in schema.get("required", []) if k not in value]
    for key, sub in schema.get("properties", {}).items():
        kinds = sub.get("type")
        if key not in value or not isinstance(kinds, str):
            continue
        ok = isinstance(value[key], _JSON_TYPES[kinds])
        if kinds in ("integer", "number") and isinstance(value[key], bool):
            ok = False
        if not ok:
            out.append(f"{where}.{key}: expected {kinds}, got {type(value[key]).__name__}")
    return out


def write_bundle(
    out: Path,
    state: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    inference: Mapping[str, Any],
    card: str,
) -> None:
    """Write a bundle folder (replacing files of the same names).

    Args:
        out: bundle root.
        state: exported network weights (:func:`convert_state_dict`).
        metadata: ``configs/metadata.json`` content.
        inference: ``configs/inference.json`` content.
        card: Markdown model card (``docs/README.md``).

    Raises:
        ValueError: when the metadata misses mandatory keys.
    """
    problems = check_metadata(metadata)
    if problems:
        raise ValueError("bundle metadata: " + "; ".join(problems))
    for rel in (METADATA_NAME, INFERENCE_NAME, WEIGHTS_NAME, CARD_NAME):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / METADATA_NAME).write_text(json.dumps(metadata, indent=2) + "\n")
    (out / INFERENCE_NAME).write_text(json.dumps(inference, indent=2) + "\n")
    (out / SCHEMA_NAME).write_text(json.dumps(METADATA_SCHEMA, indent=2) + "\n")
    torch.save(dict(state), out / WEIGHTS_NAME)
    (out / CARD_NAME).write_text(card)


#: Fine-tuning modes whose run folder holds a classifier ``model.pt``.
EXPORTABLE_MODES = ("full",)


def export_record(records: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    """The run to export: ``arm``'s fine-tuned classifier with the most labels, first seed.

    Args:
        records: ``results/label_efficiency.json``.
        arm: e.g. ``"ssl"``.

    Returns:
        The chosen record.

    Raises:
        ValueError: when no record of that arm has an exportable mode.
    """
    usable = [r for r in records if r["arm"] == arm and r.get("mode", "full") in EXPORTABLE_MODES]
    if not usable:
        raise ValueError(
            f"label_efficiency.json: no '{arm}' run in a mode with a saved classifier "
            f"{EXPORTABLE_MODES}; add one to finetune.modes.{arm}"
        )
    return max(usable, key=lambda r: (int(r["n_labels"]), -int(r["seed"])))


def exported_network(spec: NetworkSpec) -> torch.nn.Module:
    """Instantiate ``network_def`` the way the MONAI bundle runner does."""
    from monai.bundle.config_parser import ConfigParser

    net: torch.nn.Module = ConfigParser({"net": dict(spec.config)}).get_parsed_content("net")
    return net


def check_equivalent(
    original: torch.nn.Module,
    exported: torch.nn.Module,
    input_shape: tuple[int, ...],
    atol: float = 1e-5,
) -> float:
    """Largest absolute logit difference of two networks on a seeded random batch.

    Args:
        original: the medssl classifier (weights loaded).
        exported: the bundle network (weights loaded).
        input_shape: ``(B, 1, *spatial)``.
        atol: tolerance.

    Returns:
        The difference.

    Raises:
        ValueError: when it exceeds ``atol``.
    """
    x = torch.rand(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = original.eval()(x).reshape(-1)
        b = exported.eval()(x).reshape(-1)
    diff = float((a - b).abs().max())
    if diff > atol:
        raise ValueError(f"exported network differs from the fine-tuned one by {diff:.3g}")
    return diff
