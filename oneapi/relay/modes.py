"""What each /v1 route is: how its body arrives, what it requires, its default model, how it is billed
(spec §1.4, §3.3 step 5, §4.3-4.5, §5.7)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    path: str  # the upstream path (OpenAI's), whatever alias the client used
    body: str = "json"  # "json" or "multipart"
    required: str = ""  # a field the body must carry
    default_model: str = ""
    billing: str = "tokens"  # "tokens", "image", "speech" (characters) or "audio_text" (tokens of the transcript)
    streams: bool = False  # may answer with server-sent events


CHAT = Mode("chat", "/v1/chat/completions", required="messages", streams=True)
COMPLETIONS = Mode("completions", "/v1/completions", required="prompt", streams=True)
EDITS = Mode("edits", "/v1/edits", required="instruction")
EMBEDDINGS = Mode("embeddings", "/v1/embeddings", required="input")
MODERATIONS = Mode("moderations", "/v1/moderations", required="input", default_model="text-moderation-stable")
IMAGES = Mode("images", "/v1/images/generations", required="prompt", default_model="dall-e-2", billing="image")
IMAGE_EDITS = Mode("image_edits", "/v1/images/edits", body="multipart", required="prompt", default_model="dall-e-2",
                   billing="image")
IMAGE_VARIATIONS = Mode("image_variations", "/v1/images/variations", body="multipart", default_model="dall-e-2",
                        billing="image")
SPEECH = Mode("speech", "/v1/audio/speech", required="input", default_model="tts-1", billing="speech")
TRANSCRIPTIONS = Mode("transcriptions", "/v1/audio/transcriptions", body="multipart", default_model="whisper-1",
                      billing="audio_text")
TRANSLATIONS = Mode("translations", "/v1/audio/translations", body="multipart", default_model="whisper-1", billing="audio_text")

ALL = [CHAT, COMPLETIONS, EDITS, EMBEDDINGS, MODERATIONS, IMAGES, IMAGE_EDITS, IMAGE_VARIATIONS, SPEECH,
       TRANSCRIPTIONS, TRANSLATIONS]

# The OpenAI routes this gateway does not serve: 501 before any channel is chosen (spec §1.4, §12.15).
NOT_IMPLEMENTED = [
    ("/v1/files", ["GET", "POST"]),
    ("/v1/files/<path:rest>", ["GET", "DELETE"]),
    ("/v1/fine_tuning/jobs", ["GET", "POST"]),
    ("/v1/fine_tuning/jobs/<path:rest>", ["GET", "POST"]),
    ("/v1/fine-tunes", ["GET", "POST"]),
    ("/v1/fine-tunes/<path:rest>", ["GET", "POST", "DELETE"]),
    ("/v1/assistants", ["GET", "POST"]),
    ("/v1/assistants/<path:rest>", ["GET", "POST", "DELETE"]),
    ("/v1/threads", ["POST"]),
    ("/v1/threads/<path:rest>", ["GET", "POST", "DELETE"]),
    ("/v1/batches", ["GET", "POST"]),
    ("/v1/batches/<path:rest>", ["GET", "POST"]),
    ("/v1/uploads", ["POST"]),
    ("/v1/uploads/<path:rest>", ["POST"]),
    ("/v1/vector_stores", ["GET", "POST"]),
    ("/v1/vector_stores/<path:rest>", ["GET", "POST", "DELETE"]),
    ("/v1/responses", ["POST"]),
    ("/v1/responses/<path:rest>", ["GET", "POST", "DELETE"]),
    ("/v1/realtime/<path:rest>", ["GET", "POST"]),
]
