"""hookgate provider plugin: Anthropic Messages API, translated to and from OpenAI's format."""
