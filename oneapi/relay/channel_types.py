"""Channel types (spec §6): id → name, default base URL, and how the URL is built.

The upstream URL is base + prefix + the request path without its leading `/v1`: the prefix is `/v1`
for OpenAI and its look-alikes (`https://api.openai.com` + `/v1` + `/chat/completions`), the vendor's
own path where it differs (Doubao `/api/v3`), and empty where the base already carries the version
(OpenAI Compatible, whose base is SDK-style `https://host/v1`). Azure builds its own URL
(adaptors/openai.py).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelType:
    id: int
    name: str
    base_url: str
    prefix: str = "/v1"
    azure: bool = False


_TYPES = [
    ChannelType(0, "Unknown", ""),
    ChannelType(1, "OpenAI", "https://api.openai.com"),
    ChannelType(2, "API2D", "https://oa.api2d.net"),
    ChannelType(3, "Azure OpenAI", "", "", azure=True),
    ChannelType(4, "CloseAI", "https://api.closeai-proxy.xyz"),
    ChannelType(5, "OpenAI-SB", "https://api.openai-sb.com"),
    ChannelType(6, "OpenAI Max", "https://api.openaimax.com"),
    ChannelType(7, "OhMyGPT", "https://api.ohmygpt.com"),
    ChannelType(8, "Custom", ""),
    ChannelType(9, "AI.LS", "https://api.caipacity.com"),
    ChannelType(10, "AI Proxy", "https://api.aiproxy.io"),
    ChannelType(12, "API2GPT", "https://api.api2gpt.com"),
    ChannelType(13, "AIGC2D", "https://api.aigc2d.com"),
    ChannelType(19, "360 Zhinao", "https://ai.360.cn"),
    ChannelType(20, "OpenRouter", "https://openrouter.ai/api"),
    ChannelType(22, "FastGPT", "https://fastgpt.run/api/openapi"),
    ChannelType(25, "Moonshot", "https://api.moonshot.cn"),
    ChannelType(26, "Baichuan", "https://api.baichuan-ai.com"),
    ChannelType(28, "Mistral", "https://api.mistral.ai"),
    ChannelType(29, "Groq", "https://api.groq.com/openai"),
    ChannelType(31, "01.AI", "https://api.lingyiwanwu.com"),
    ChannelType(32, "StepFun", "https://api.stepfun.com"),
    ChannelType(36, "DeepSeek", "https://api.deepseek.com"),
    ChannelType(39, "together.ai", "https://api.together.xyz"),
    ChannelType(40, "Doubao", "https://ark.cn-beijing.volces.com", "/api/v3"),
    ChannelType(41, "Novita", "https://api.novita.ai/v3/openai", ""),
    ChannelType(44, "SiliconFlow", "https://api.siliconflow.cn"),
    ChannelType(45, "xAI", "https://api.x.ai"),
    ChannelType(47, "Baidu Qianfan V2", "https://qianfan.baidubce.com", "/v2"),
    ChannelType(48, "Xunfei Spark V2", "https://spark-api-open.xf-yun.com"),
    ChannelType(49, "Alibaba Bailian", "https://dashscope.aliyuncs.com", "/compatible-mode/v1"),
    ChannelType(50, "OpenAI Compatible", "", ""),
    ChannelType(51, "Gemini (OpenAI-compatible)", "https://generativelanguage.googleapis.com/v1beta/openai", ""),
]

TYPES = {t.id: t for t in _TYPES}
# Types this gateway relays today (the converting adaptors, Anthropic, Gemini, Ollama..., come later).
RELAYABLE = {t.id for t in _TYPES if t.id != 0}


def get(type_id):
    return TYPES.get(type_id)
