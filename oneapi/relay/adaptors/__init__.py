"""Adaptors turn a client's OpenAI-shaped request into one channel type's upstream request."""

from oneapi.relay.adaptors import openai

__all__ = ["openai"]


def for_channel(channel_type):
    """The adaptor module for a channel type. Converting adaptors (Anthropic, Gemini, ...) slot in here."""
    return openai
