"""Code the tests share: brokers, processes, scripted LLMs, small systems."""
