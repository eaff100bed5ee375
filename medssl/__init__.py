"""medssl: self-supervised pretraining and few-label anomaly detection on hospital imaging."""

import logging
import warnings

__version__ = "0.1.0"

# MONAI's LoadImage instantiates every reader it knows, among them a GPU-only DICOM decoder
# (nvImageCodec) that announces, on every load, that it is absent. medssl reads DICOM with
# pydicom + pylibjpeg and only NIfTI through MONAI, so the message is noise a user cannot
# act on: silence exactly that logger and that warning, nothing else.
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
warnings.filterwarnings(
    "ignore",
    message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register",
    category=UserWarning,
)
