from services.common import buckets

FAMILIES = ["GRPC", "FIRST_OUTPUT", "INTER_TOKEN", "STAGE", "FRAME", "TURN", "RTF", "TOKENS", "LOAD",
            "ENDPOINTING", "SENTENCES"]


def test_families_are_sorted_and_cover_their_range():
    ranges = {
        "GRPC": (0.001, 60), "FIRST_OUTPUT": (0.005, 10), "INTER_TOKEN": (0.001, 1), "STAGE": (0.01, 60),
        "FRAME": (0.0005, 0.2), "TURN": (0.25, 120), "RTF": (0.005, 5), "TOKENS": (1, 8192), "LOAD": (0.01, 300),
        "ENDPOINTING": (0.05, 5),
        "SENTENCES": (1, 20),
    }
    for name in FAMILIES:
        b = getattr(buckets, name)
        assert list(b) == sorted(set(b)), name
        assert (b[0], b[-1]) == ranges[name], name
        assert len(b) <= 17, f"{name}: every bucket is a series per label set"


def test_targets_fall_on_bucket_edges():
    # Alert thresholds and targets must be bucket edges so histogram_quantile is exact there.
    assert 1.0 in buckets.TURN and 1.5 in buckets.TURN
    assert 0.04 in buckets.FRAME  # one frame at 25 fps
    assert 1.0 in buckets.RTF
    assert 1.5 in buckets.FIRST_OUTPUT
    assert 1.0 in buckets.ENDPOINTING and 1.2 in buckets.ENDPOINTING
