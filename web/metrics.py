"""Web service metrics: browser sessions, their connections, and what reached the browser."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRANSPORTS = ("webrtc", "ws")


class WebMetrics:
    def __init__(self, registry=None):
        p = "talker_web"
        kw = {"registry": registry} if registry is not None else {}
        self.sessions = Gauge(f"{p}_active_sessions", "Open browser sessions by transport.", ["transport"], **kw)
        self.sessions_total = Counter(f"{p}_sessions_total", "Browser sessions started, by transport.",
                                      ["transport"], **kw)
        self.max_sessions = Gauge(f"{p}_max_sessions", "The browser session limit of this replica.", **kw)
        self.rejected = Counter(f"{p}_rejected_sessions_total", "Sessions refused, by reason.", ["reason"], **kw)
        self.connection_states = Counter(f"{p}_connection_state_changes_total",
                                         "WebRTC peer connection state changes, by the state entered.",
                                         ["state"], **kw)
        self.rtt = Histogram(f"{p}_webrtc_round_trip_seconds", "Round-trip time to the browser (RTCP).",
                             buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), **kw)
        self.jitter = Histogram(f"{p}_webrtc_jitter_seconds", "Interarrival jitter reported by RTCP, by kind.",
                                ["kind"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25), **kw)
        self.packets_lost = Counter(f"{p}_webrtc_packets_lost_total", "RTP packets lost, by direction and kind.",
                                    ["direction", "kind"], **kw)
        self.packets = Counter(f"{p}_webrtc_packets_total", "RTP packets, by direction and kind.",
                               ["direction", "kind"], **kw)
        self.frames_sent = Counter(f"{p}_frames_sent_total", "Avatar frames sent to browsers.", ["transport"], **kw)
        self.frames_dropped = Counter(f"{p}_frames_dropped_total", "Avatar frames never sent: a newer frame was due "
                                      "or the browser's connection was behind.", ["transport"], **kw)
        self.audio_underruns = Counter(f"{p}_audio_underruns_total", "20 ms of reply audio due but not there "
                                       "(silence sent instead).", ["transport"], **kw)
        self.gateway_errors = Counter(f"{p}_gateway_errors_total", "Gateway sessions that ended in an error, "
                                      "by status code.", ["code"], **kw)
        for t in TRANSPORTS:
            self.sessions.labels(t)
            self.sessions_total.labels(t)
            self.frames_sent.labels(t)
            self.frames_dropped.labels(t)
            self.audio_underruns.labels(t)
        for reason in ("limit", "origin", "bad_request"):
            self.rejected.labels(reason)
