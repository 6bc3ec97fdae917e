"""Preprocessing before embedding: OCR word boxes (with a worker pool), the text mask and its
inpainting, the mask store, and the chunked preprocessing stage that ties them together.

Public names load lazily (``logosim.preprocess.NAME`` imports only the module that defines it).
"""

from logosim._lazy import lazy_exports

_EXPORTS = {
    "MASKS_DIR": "mask_store",
    "PREPARE_FACTORY": "mask_store",
    "encode_rle": "mask_store",
    "decode_rle": "mask_store",
    "ImageMask": "mask_store",
    "write_mask_chunk": "mask_store",
    "MaskReader": "mask_store",
    "prepare_spec": "mask_store",
    "masked_prepare": "mask_store",
    "OCR_CODE_VERSION": "ocr",
    "TesseractMissingError": "ocr",
    "OcrParams": "ocr",
    "WordBox": "ocr",
    "tesseract_available": "ocr",
    "metadata_words": "ocr",
    "should_skip": "ocr",
    "detect_words": "ocr",
    "has_text_strokes": "ocr",
    "HARD_DEADLINE_SLACK_S": "ocr_pool",
    "MAX_CONSECUTIVE_CRASHES": "ocr_pool",
    "OcrPoolError": "ocr_pool",
    "Failure": "ocr_pool",
    "default_workers": "ocr_pool",
    "OcrPool": "ocr_pool",
    "STAGE": "stage",
    "PREPROCESS_CODE_VERSION": "stage",
    "ERRORS_FILE": "stage",
    "PreprocessParams": "stage",
    "OcrItem": "stage",
    "Analysis": "stage",
    "analyse_image": "stage",
    "analyse_decoded": "stage",
    "warn_tesseract_missing": "stage",
    "terminate_as_interrupt": "stage",
    "PROGRESS": "stage",
    "analyse_records": "stage",
    "preprocess_job": "stage",
    "preprocess_chunk": "stage",
    "collect_preprocess_errors": "stage",
    "INK_THRESHOLD": "text_mask",
    "MaskFlag": "text_mask",
    "MaskParams": "text_mask",
    "boxes_to_mask": "text_mask",
    "ink": "text_mask",
    "text_share": "text_mask",
    "classify": "text_mask",
    "inpaint": "text_mask",
    "apply_mask": "text_mask",
    "QueryPrepare": "query_mask",
    "mask_query_text": "query_mask",
    "query_prepare": "query_mask",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
