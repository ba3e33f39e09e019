"""Image-quality outcomes of the pipeline as Chinese refusals the person can act on."""

from __future__ import annotations

from biometric import pipeline
from biometric.pipeline import FaceAnalysis
from workflow.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_SELFIE = {
    pipeline.NO_FACE: "未检测到人脸：请正对镜头、光线充足、完整露出面部后重新拍摄",
    pipeline.MULTIPLE_FACES: "画面中有多张人脸：请确保只有您本人入镜后重新拍摄",
    pipeline.FACE_TOO_SMALL: "人脸太小：请靠近镜头，让面部占据画面的大部分后重新拍摄",
    pipeline.BAD_IMAGE: "照片无法识别（可能已损坏），请重新拍摄",
}
_REFERENCE = {
    pipeline.NO_FACE: "照片中未检测到人脸：请使用清晰、正面、未被遮挡的人像",
    pipeline.MULTIPLE_FACES: "照片中有多张人脸：参考照片只能有您本人一张人脸",
    pipeline.FACE_TOO_SMALL: "照片中的人脸太小：请使用人像更大、更清晰的照片",
    pipeline.BAD_IMAGE: "照片无法识别（可能已损坏），请重新上传",
}


def raise_for_status(analysis: FaceAnalysis, *, reference: bool = False, frame: int | None = None) -> None:
    """Raise a DomainError unless exactly one usable face was found."""
    if analysis.ok:
        return
    status = analysis.status
    if status == pipeline.UNSUPPORTED_IMAGE:
        raise UnsupportedMediaType("只接受 JPEG 或 PNG 格式的照片", code="unsupported_image")
    if status == pipeline.IMAGE_TOO_LARGE:
        raise PayloadTooLarge("照片像素过多，请使用手机正常拍摄的照片", code="image_too_large")
    messages = _REFERENCE if reference else _SELFIE
    message = messages.get(status, messages[pipeline.BAD_IMAGE])
    if frame is not None:
        message = f"第 {frame} 张照片：{message}"
    details = {"faces": analysis.faces, "status": status}
    if status == pipeline.FACE_TOO_SMALL:
        details["face_size"] = analysis.face_size
    if frame is not None:
        details["frame"] = frame
    raise InvalidInput(message, code=f"face_{status}" if not status.startswith("face_") else status, details=details)

