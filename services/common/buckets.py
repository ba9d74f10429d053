"""Histogram bucket families, each sized for the range it measures.

One module so that every service bins the same kind of latency the same way
and dashboards can compare them. ``tests/unit/test_buckets.py`` pins them.
"""

# gRPC handling time of any call: 1 ms .. 60 s.
GRPC = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Time to a stage's first output (first token, first audio, first frame): 5 ms .. 10 s.
FIRST_OUTPUT = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

# Gap between two generated tokens: 1 ms .. 1 s.
INTER_TOKEN = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)

# One stage call end to end (a transcription, a sentence's synthesis, a generation): 10 ms .. 60 s.
STAGE = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)

# Rendering one video frame: 0.5 ms .. 200 ms (40 ms is real time at 25 fps).
FRAME = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.1, 0.2)

# A whole conversation turn: 250 ms .. 2 min.
TURN = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0, 60.0, 120.0)

# Real-time factor (processing seconds per audio second); < 1 is faster than real time.
RTF = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

# Token counts per request: 1 .. 8192.
TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

# Sentences per spoken reply: 1 .. 20 (a reply is meant to be one to three).
SENTENCES = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)

# Loading a model: 10 ms .. 5 min.
LOAD = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Endpointing wait (end of speech to the end-of-turn decision): 50 ms .. 5 s; the silence cap
# (1 s by default) and the 1.2 s hands-free target are edges.
ENDPOINTING = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)
