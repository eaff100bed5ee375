"""Model hand-off: the fine-tuned classifier as a MONAI bundle, with a model card."""

from medssl.export.bundle import (
    METADATA_SCHEMA,
    check_metadata,
    convert_state_dict,
    inference_config,
    network_data_format,
    network_spec,
    preprocessing_config,
    write_bundle,
)
from medssl.export.card import CardInfo, bundle_metadata, data_description, model_card

__all__ = [
    "METADATA_SCHEMA",
    "CardInfo",
    "bundle_metadata",
    "check_metadata",
    "convert_state_dict",
    "data_description",
    "inference_config",
    "model_card",
    "network_data_format",
    "network_spec",
    "preprocessing_config",
    "write_bundle",
]
