"""Built-in model names per channel type, offered by the channel editor (spec §1.3 /api/models)."""

from oneapi.relay import channel_types

OPENAI = [
    "gpt-3.5-turbo", "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-instruct", "gpt-4", "gpt-4-turbo",
    "gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "chatgpt-4o-latest", "gpt-4o-mini", "gpt-4.1",
    "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "gpt-5-nano", "o1", "o1-mini", "o3", "o3-mini",
    "o4-mini", "text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large",
    "text-moderation-latest", "text-moderation-stable", "omni-moderation-latest", "whisper-1", "tts-1", "tts-1-hd",
    "dall-e-2", "dall-e-3",
]
BY_TYPE = {
    20: ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "google/gemini-2.0-flash-001",
         "deepseek/deepseek-chat", "meta-llama/llama-3.3-70b-instruct"],
    25: ["moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k"],
    28: ["mistral-large-latest", "mistral-small-latest", "open-mistral-nemo", "mistral-embed"],
    29: ["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "gemma2-9b-it"],
    36: ["deepseek-chat", "deepseek-reasoner"],
    44: ["deepseek-ai/DeepSeek-V3", "Qwen/Qwen2.5-72B-Instruct", "BAAI/bge-m3"],
    45: ["grok-3", "grok-3-mini", "grok-2-vision-1212"],
    51: ["gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro"],
}


def for_type(type_id):
    return BY_TYPE.get(type_id, OPENAI if type_id in channel_types.TYPES else [])


def all_types():
    return {str(type_id): for_type(type_id) for type_id in channel_types.TYPES if type_id}


def every_model():
    return sorted({model for models in all_types().values() for model in models})
