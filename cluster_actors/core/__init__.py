"""Pure protocol cores: no ray, no asyncio, no wall clock, no IO.

Time comes in as an argument and randomness from an injected ``random.Random``,
so the same code runs in unit tests, the deterministic simulator and on Ray.
"""
