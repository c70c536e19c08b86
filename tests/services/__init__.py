"""Services: agents, tools, humans, components; the LLMs tests use."""
