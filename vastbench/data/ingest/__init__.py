"""Real talking-head videos in: HDTF, MEAD, VoxCeleb or a folder per speaker -> a vastbench dataset.

``ingest(IngestConfig(...))`` (``vastbench data ingest``) writes the same
manifest and features contract as SynthTalk; ``capture_video`` gives the same
face representation (PCA expression, pose, 68 landmarks) for any mp4, for
metrics on real video.  MediaPipe runs in an isolated environment
(``mediapipe_env``; set it up once with ``vastbench data ingest-setup``).
"""

from vastbench.data.ingest.capture import capture_video
from vastbench.data.ingest.geometry import MESH_TO_IBUG68, FaceModel
from vastbench.data.ingest.pipeline import PROFILES, IngestConfig, ingest
from vastbench.data.ingest.rasterizer import MediaPipeRasterizer

__all__ = ["PROFILES", "IngestConfig", "ingest", "capture_video", "FaceModel", "MESH_TO_IBUG68", "MediaPipeRasterizer"]
