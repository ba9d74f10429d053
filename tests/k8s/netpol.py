"""A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics for pod-to-pod traffic), so the chart
tests can ask "may this pod reach that port?" of the rendered policies.

A pod selected by a policy of a direction is isolated in that direction; traffic is then allowed only
when some selecting policy has a rule whose peers and ports match. ipBlock peers never match a pod.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict
    ports: dict = dataclasses.field(default_factory=dict)  # container port name -> number
    namespace_labels: dict = dataclasses.field(default_factory=dict)

    @property
    def ns_labels(self) -> dict:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def selects(selector: dict | None, labels: dict) -> bool:
    """A metav1.LabelSelector; an empty one selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict, policy_ns: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.ns_labels):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], pod.labels)


def _port_matches(ports: list | None, target: Pod, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            want = target.ports.get(want)
        end = p.get("endPort", want)
        if want is not None and want <= port <= end:
            return True
    return False


def _allowed(policies: list[dict], direction: str, subject: Pod, peer: Pod, port_owner: Pod, port: int,
             protocol: str) -> bool:
    kind = "Ingress" if direction == "ingress" else "Egress"
    peers_key = "from" if direction == "ingress" else "to"
    selecting = [p for p in policies
                 if p["metadata"].get("namespace") == subject.namespace
                 and kind in p["spec"].get("policyTypes", ["Ingress"])
                 and selects(p["spec"].get("podSelector"), subject.labels)]
    if not selecting:
        return True
    for pol in selecting:
        for rule in pol["spec"].get(direction) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(x, pol["metadata"]["namespace"], peer) for x in peers):
                continue
            if _port_matches(rule.get("ports"), port_owner, port, protocol):
                return True
    return False


def ingress_allowed(policies: list[dict], src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
    return _allowed(policies, "ingress", dst, src, dst, port, protocol)


def egress_allowed(policies: list[dict], src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
    return _allowed(policies, "egress", src, dst, dst, port, protocol)


def connects(policies: list[dict], src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
    """Both ends agree: the source may send and the destination may receive."""
    return egress_allowed(policies, src, dst, port, protocol) and ingress_allowed(policies, src, dst, port, protocol)
