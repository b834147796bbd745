"""hookgate provider plugin: Google Gemini (AI Studio generateContent), translated to and from OpenAI's format."""
