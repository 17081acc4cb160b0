#!/usr/bin/env python3
"""Checks Deploy/kubernetes/*.yaml beyond syntax; run by scripts/check-deploy.sh with the venv's python.

  check-kubernetes.py [--prometheus-config FILE] DIR     check the manifests in DIR
  check-kubernetes.py --self-test [...] DIR              break DIR's manifests in known ways (in memory); each
                                                         broken variant must be rejected with the expected message

Schema: every resource against the Kubernetes OpenAPI schemas of 1.30 and of the newest version kubernetes-validate
bundles, strict (unknown fields fail). A kind/apiVersion without a bundled schema FAILS (a typo is not skipped),
except the Prometheus operator's PodMonitor (monitoring.coreos.com/v1), a CRD that is checked here field by field.

Semantics:
  - each Deployment's selector is non-empty and matches its own pod template's labels, and no other Deployment's
  - the worker and beat containers (args "worker" / "beat") give --metrics-port (or CELERIAC_METRICS_PORT), and
    have a container port named "metrics" with that number; prometheus.io/port, when present, is that number
  - readiness probe = GET /readyz and liveness probe = GET /healthz on the metrics port (a startup probe, if any,
    /healthz); volume mounts name declared volumes; secretKeyRef names a Secret in DIR that has the key
  - beat: at least 2 replicas, no --no-lock, its --state file on a writable volume when the root is read-only;
    affinity / topology-spread label selectors match the pod's own labels
  - a PodDisruptionBudget selects the worker pods and only them, and allows at least one eviction at the smallest
    replica count (the Deployment's, or the HPA's minReplicas)
  - PodMonitors: known fields only; their selector picks worker or beat pods; every endpoint's port is the name of
    those pods' metrics container port and its path is /metrics; a relabeling sets job to the name the alerts
    and dashboards use (celeriac-workers / celeriac-beat, also required in --prometheus-config); every worker and
    beat Deployment is scraped by one
  - an HPA's scaleTargetRef names a Deployment in DIR, minReplicas <= maxReplicas
Exit status: 0 when everything holds, 1 when a problem was found (each printed on its own line), 2 on usage errors.
"""
import copy
import glob
import math
import os
import sys

try:
    import yaml
    from kubernetes_validate import utils as kv
except ImportError as error:
    print(f"{error.name} is not importable by {sys.executable}: run scripts/bootstrap.sh, which installs PyYAML and "
          f"kubernetes-validate (pinned) into .run/venv")
    sys.exit(2)

OLDEST_K8S = "1.30.0"  # oldest Kubernetes the manifests promise to work on (autoscaling/v2, policy/v1, apps/v1)
JOBS = {"worker": "celeriac-workers", "beat": "celeriac-beat"}  # Prometheus job names (prometheus/prometheus.yml)
MONITOR_API = "monitoring.coreos.com/v1"
# Fields of the Prometheus operator's PodMonitor (monitoring.coreos.com/v1) this check accepts; anything else is
# reported as a probable typo (kubernetes-validate has no schema for CRDs).
PODMONITOR_SPEC = {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels",
                   "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
                   "attachMetadata", "scrapeClass", "scrapeProtocols", "bodySizeLimit", "keepDroppedTargets"}
ENDPOINT_FIELDS = {"port", "portNumber", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
                   "honorTimestamps", "trackTimestampsStaleness", "relabelings", "metricRelabelings",
                   "followRedirects", "enableHttp2", "filterRunning", "tlsConfig", "basicAuth", "authorization",
                   "oauth2", "bearerTokenSecret", "proxyUrl"}
RELABEL_FIELDS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
SELECTOR_FIELDS = {"matchLabels", "matchExpressions"}


def load(directory):
    """[(file, resource)] for every non-empty YAML document in DIR/*.yaml (and *.yml)."""
    files = sorted(glob.glob(os.path.join(directory, "*.yaml")) + glob.glob(os.path.join(directory, "*.yml")))
    resources = []
    for path in files:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    resources.append((path, doc))
    return resources


def name_of(res):
    return f"{res.get('kind', '?')}/{(res.get('metadata') or {}).get('name', '?')}"


def selects(selector, labels):
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values: return False
        if op == "NotIn" and key in labels and labels[key] in values: return False
        if op == "Exists" and key not in labels: return False
        if op == "DoesNotExist" and key in labels: return False
    return True


def flag_value(args, flag):
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


class Workload:
    """A Deployment and what the checks need from it."""

    def __init__(self, path, res):
        self.path, self.res = path, res
        self.name = (res.get("metadata") or {}).get("name", "?")
        spec = res.get("spec") or {}
        self.replicas = spec.get("replicas", 1)
        self.selector = spec.get("selector") or {}
        self.template = spec.get("template") or {}
        self.labels = (self.template.get("metadata") or {}).get("labels") or {}
        self.annotations = (self.template.get("metadata") or {}).get("annotations") or {}
        self.pod = self.template.get("spec") or {}
        self.role, self.container = None, None
        for c in self.pod.get("containers") or []:
            argv = (c.get("command") or [])[1:] + (c.get("args") or [])
            if argv and argv[0] in JOBS:
                self.role, self.container = argv[0], c
                break

    def where(self):
        return f"{self.path}: Deployment/{self.name}"

    def argv(self):
        c = self.container
        return (c.get("command") or [])[1:] + (c.get("args") or [])

    def configured_metrics_port(self):
        value = flag_value(self.argv(), "--metrics-port")
        if value is None:
            for env in self.container.get("env") or []:
                if env.get("name") == "CELERIAC_METRICS_PORT":
                    value = env.get("value")
        return int(value) if value is not None and str(value).isdigit() else None

    def metrics_port(self):
        """The container port named "metrics" ({name, containerPort}) or None."""
        for port in self.container.get("ports") or []:
            if port.get("name") == "metrics":
                return port
        return None


def check_schema(resources, versions):
    problems = []
    for path, res in resources:
        if (res.get("apiVersion"), res.get("kind")) == (MONITOR_API, "PodMonitor"):
            continue  # a CRD: checked by check_podmonitor_fields
        for version in versions:
            try:
                kv.validate(res, version, strict=True)
            except kv.SchemaNotFoundError:
                problems.append(f"{path}: {name_of(res)}: no Kubernetes {kv.major_minor(version)} schema for kind "
                                f"{res.get('kind')} in apiVersion {res.get('apiVersion')} (a typo, a removed API, or "
                                f"a CRD this check does not know)")
                break
            except kv.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                problems.append(f"{path}: {name_of(res)} against Kubernetes {e.version} (strict): {where}: {e.message}")
    return problems


def check_selector_fields(where, selector, problems):
    if not isinstance(selector, dict):
        problems.append(f"{where}: selector is not a mapping")
        return False
    unknown = set(selector) - SELECTOR_FIELDS
    if unknown:
        problems.append(f"{where}: unknown selector field(s) {sorted(unknown)}")
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        problems.append(f"{where}: empty selector (it would select every pod in the namespace)")
        return False
    return True


def check_podmonitor_fields(path, res, problems):
    where = f"{path}: {name_of(res)}"
    unknown = set(res) - {"apiVersion", "kind", "metadata", "spec"}
    if unknown:
        problems.append(f"{where}: unknown top-level field(s) {sorted(unknown)}")
    if not (res.get("metadata") or {}).get("name"):
        problems.append(f"{where}: metadata.name is missing")
    spec = res.get("spec")
    if not isinstance(spec, dict):
        problems.append(f"{where}: spec is missing")
        return False
    unknown = set(spec) - PODMONITOR_SPEC
    if unknown:
        problems.append(f"{where}: unknown PodMonitor spec field(s) {sorted(unknown)} (a typo? known: "
                        f"{', '.join(sorted(PODMONITOR_SPEC))})")
    ok = check_selector_fields(where + " spec.selector", spec.get("selector"), problems)
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append(f"{where}: spec.podMetricsEndpoints is missing or empty")
        return False
    for i, ep in enumerate(endpoints):
        ew = f"{where} podMetricsEndpoints[{i}]"
        if not isinstance(ep, dict):
            problems.append(f"{ew}: not a mapping"); ok = False; continue
        unknown = set(ep) - ENDPOINT_FIELDS
        if unknown:
            problems.append(f"{ew}: unknown field(s) {sorted(unknown)} (a typo? known: {', '.join(sorted(ENDPOINT_FIELDS))})")
        if not isinstance(ep.get("port"), str) or not ep.get("port"):
            problems.append(f"{ew}: port must be the name of the pod's metrics container port (a string)"); ok = False
        for j, rl in enumerate(ep.get("relabelings") or []):
            unknown = set(rl) - RELABEL_FIELDS
            if unknown:
                problems.append(f"{ew} relabelings[{j}]: unknown field(s) {sorted(unknown)}")
    return ok


def check_workload(w, secrets, problems):
    where = w.where()
    if not check_selector_fields(where + " spec.selector", w.selector, problems):
        return
    if not selects(w.selector, w.labels):
        problems.append(f"{where}: spec.selector {w.selector} does not match its pod template's labels {w.labels}")
    # Volume mounts and secrets, which the schema cannot relate.
    volumes = {v.get("name") for v in w.pod.get("volumes") or []}
    for c in (w.pod.get("containers") or []) + (w.pod.get("initContainers") or []):
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.append(f"{where} container {c.get('name')}: volumeMount {m.get('name')} names no volume "
                                f"(declared: {sorted(volumes)})")
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                if ref.get("name") not in secrets:
                    problems.append(f"{where} container {c.get('name')}: env {env.get('name')} reads Secret "
                                    f"{ref.get('name')}, which no manifest here defines")
                elif ref.get("key") not in secrets[ref["name"]]:
                    problems.append(f"{where} container {c.get('name')}: Secret {ref['name']} has no key {ref.get('key')}")
    # Pod (anti-)affinity and topology spread aimed at its own pods.
    affinity = w.pod.get("affinity") or {}
    terms = []
    for kind in ("podAntiAffinity", "podAffinity"):
        a = affinity.get(kind) or {}
        terms += a.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        terms += [t.get("podAffinityTerm") or {} for t in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
    terms += w.pod.get("topologySpreadConstraints") or []
    for t in terms:
        if t.get("labelSelector") is not None and not selects(t["labelSelector"], w.labels):
            problems.append(f"{where}: affinity/topology labelSelector {t['labelSelector']} does not match its own pods' labels")
    if w.role is None:
        return
    c = w.container
    cw = f"{where} container {c.get('name')} ({w.role})"
    configured = w.configured_metrics_port()
    port = w.metrics_port()
    if configured is None:
        problems.append(f"{cw}: no --metrics-port (nor CELERIAC_METRICS_PORT in env): give the port explicitly")
    if port is None:
        problems.append(f"{cw}: no container port named \"metrics\" (the probes and the PodMonitor refer to it by name)")
        return
    number = port.get("containerPort")
    if configured is not None and configured != number:
        problems.append(f"{cw}: --metrics-port {configured} but the \"metrics\" container port is {number}")
    annotated = w.annotations.get("prometheus.io/port")
    if annotated is not None and str(annotated) != str(number):
        problems.append(f"{where}: annotation prometheus.io/port {annotated} is not the metrics port {number}")
    if w.annotations.get("prometheus.io/path", "/metrics") != "/metrics":
        problems.append(f"{where}: annotation prometheus.io/path is {w.annotations['prometheus.io/path']}, not /metrics")
    ports_by_name = {p.get("name"): p.get("containerPort") for p in c.get("ports") or [] if p.get("name")}
    for probe_name, path, required in (("readinessProbe", "/readyz", True), ("livenessProbe", "/healthz", True),
                                       ("startupProbe", "/healthz", False)):
        probe = c.get(probe_name)
        if probe is None:
            if required:
                problems.append(f"{cw}: no {probe_name} (GET {path} on the metrics port)")
            continue
        get = probe.get("httpGet")
        if not get:
            problems.append(f"{cw}: {probe_name} is not an httpGet probe of {path}")
            continue
        target = get.get("port")
        resolved = ports_by_name.get(target) if isinstance(target, str) else target
        if resolved != number:
            problems.append(f"{cw}: {probe_name} port {target!r} is not the metrics port ({port.get('name')} = {number})")
        if get.get("path") != path:
            problems.append(f"{cw}: {probe_name} path is {get.get('path')!r}, expected {path}")
        if get.get("scheme", "HTTP") != "HTTP":
            problems.append(f"{cw}: {probe_name} scheme {get.get('scheme')}: the metrics endpoint speaks plain HTTP")
    if w.role == "beat":
        if w.replicas < 2:
            problems.append(f"{where}: replicas {w.replicas}: beat runs 2 (one active, one hot standby via the broker lock)")
        if "--no-lock" in w.argv():
            problems.append(f"{cw}: --no-lock: with several replicas every one of them would send every run")
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            state = flag_value(w.argv(), "--state") or "celeriac-beat-state.json"
            state = os.path.normpath(os.path.join(c.get("workingDir") or "/", state))
            writable = [m["mountPath"] for m in c.get("volumeMounts") or []
                        if not m.get("readOnly") and state.startswith(m["mountPath"].rstrip("/") + "/")]
            if not writable:
                problems.append(f"{cw}: the state file {state} is not on a writable volume and the root filesystem is "
                                f"read-only (mount an emptyDir and pass --state DIR/FILE)")


def check(resources, versions, prometheus_config=None):
    """All checks; returns (problems, summary)."""
    problems = check_schema(resources, versions)
    seen = {}
    for path, res in resources:
        key = (res.get("kind"), (res.get("metadata") or {}).get("name"))
        if key in seen:
            problems.append(f"{path}: {name_of(res)} is also defined in {seen[key]}")
        seen[key] = path
    secrets = {}
    for _, res in resources:
        if res.get("kind") == "Secret":
            secrets[(res.get("metadata") or {}).get("name")] = set(res.get("data") or {}) | set(res.get("stringData") or {})
    workloads = [Workload(p, r) for p, r in resources if r.get("kind") == "Deployment"]
    for w in workloads:
        check_workload(w, secrets, problems)
        for other in workloads:
            if other is not w and w.selector and selects(w.selector, other.labels):
                problems.append(f"{w.where()}: its selector also matches the pods of Deployment/{other.name}")
    by_role = {role: [w for w in workloads if w.role == role] for role in JOBS}
    for role, ws in by_role.items():
        if not ws:
            problems.append(f"no {role} Deployment (a container whose args start with \"{role}\")")

    # HPAs: the smallest replica count of each target.
    min_replicas = {w.name: w.replicas for w in workloads}
    for path, res in resources:
        if res.get("kind") != "HorizontalPodAutoscaler":
            continue
        spec = res.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") not in min_replicas:
            problems.append(f"{path}: {name_of(res)}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} is no Deployment here")
            continue
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if lo > hi:
            problems.append(f"{path}: {name_of(res)}: minReplicas {lo} > maxReplicas {hi}")
        min_replicas[ref["name"]] = min(min_replicas[ref["name"]], lo)

    # PodDisruptionBudgets.
    pdb_for = {}
    for path, res in resources:
        if res.get("kind") != "PodDisruptionBudget":
            continue
        where = f"{path}: {name_of(res)}"
        spec = res.get("spec") or {}
        if not check_selector_fields(where + " spec.selector", spec.get("selector"), problems):
            continue
        chosen = [w for w in workloads if selects(spec["selector"], w.labels)]
        if len(chosen) != 1:
            problems.append(f"{where}: selector {spec['selector']} matches the pods of "
                            f"{[w.name for w in chosen] or 'no Deployment'}; it must match exactly one Deployment's")
            continue
        w = chosen[0]
        pdb_for.setdefault(w.name, []).append(name_of(res))
        n = min_replicas[w.name]
        if "minAvailable" in spec and "maxUnavailable" in spec:
            problems.append(f"{where}: minAvailable and maxUnavailable are both set (the API rejects that)")
        if "minAvailable" in spec:
            value = spec["minAvailable"]
            need = math.ceil(n * int(value[:-1]) / 100) if isinstance(value, str) and value.endswith("%") else int(value)
            if need >= n:
                problems.append(f"{where}: minAvailable {value} of {n} replicas leaves no eviction: node drains would hang")
        if "maxUnavailable" in spec:
            value = spec["maxUnavailable"]
            allowed = math.ceil(n * int(value[:-1]) / 100) if isinstance(value, str) and value.endswith("%") else int(value)
            if allowed < 1:
                problems.append(f"{where}: maxUnavailable {value} allows no eviction: node drains would hang")
    for w in by_role["worker"]:
        if w.name not in pdb_for:
            problems.append(f"{w.where()}: no PodDisruptionBudget selects the worker pods ({w.labels})")

    # PodMonitors (the Prometheus operator's CRD).
    scraped = {}
    for path, res in resources:
        kind, api = res.get("kind"), res.get("apiVersion")
        if api == MONITOR_API and kind == "ServiceMonitor":
            problems.append(f"{path}: {name_of(res)}: ServiceMonitors are not checked here (they go through a Service); "
                            f"use a PodMonitor or extend scripts/check-kubernetes.py")
            continue
        if (api, kind) != (MONITOR_API, "PodMonitor"):
            continue
        where = f"{path}: {name_of(res)}"
        if not check_podmonitor_fields(path, res, problems):
            continue
        spec = res["spec"]
        chosen = [w for w in workloads if selects(spec["selector"], w.labels)]
        if not chosen:
            problems.append(f"{where}: selector {spec['selector']} matches no Deployment's pods")
        for w in chosen:
            if w.role is None or w.metrics_port() is None:
                problems.append(f"{where}: selects Deployment/{w.name}, which serves no Celeriac metrics port")
                continue
            scraped.setdefault(w.name, []).append(name_of(res))
            port_name = w.metrics_port().get("name")
            for i, ep in enumerate(spec["podMetricsEndpoints"]):
                ew = f"{where} podMetricsEndpoints[{i}]"
                if ep.get("port") != port_name:
                    names = [p.get("name") for p in w.container.get("ports") or []]
                    problems.append(f"{ew}: port {ep.get('port')!r} is not the metrics container port "
                                    f"{port_name!r} of Deployment/{w.name} (its ports: {names})")
                if ep.get("path") != "/metrics":
                    problems.append(f"{ew}: path {ep.get('path')!r}, expected /metrics")
                if ep.get("scheme", "http") != "http":
                    problems.append(f"{ew}: scheme {ep.get('scheme')}: the metrics endpoint speaks plain HTTP")
                jobs = [rl.get("replacement") for rl in ep.get("relabelings") or []
                        if rl.get("targetLabel") == "job" and rl.get("action", "replace") == "replace"]
                if not jobs or jobs[-1] != JOBS[w.role]:
                    problems.append(f"{ew}: the {w.role} pods' job label would be {jobs[-1] if jobs else '<namespace>/<name>'!r}; "
                                    f"the alerts and dashboards expect {JOBS[w.role]!r} (relabeling targetLabel: job)")
    for role, ws in by_role.items():
        for w in ws:
            if w.name not in scraped:
                problems.append(f"{w.where()}: no PodMonitor scrapes the {role} pods ({w.labels})")
    if prometheus_config:
        with open(prometheus_config) as f:
            jobs = {sc.get("job_name") for sc in (yaml.safe_load(f) or {}).get("scrape_configs") or []}
        for job in JOBS.values():
            if job not in jobs:
                problems.append(f"{prometheus_config}: no scrape job {job!r}, the job name the PodMonitors set")

    summary = (f"{len(resources)} resources, schemas {'+'.join(kv.major_minor(v) for v in versions)} strict; "
               f"{len(workloads)} Deployments (selectors, metrics port, /readyz + /healthz probes), "
               f"PDB for {sorted(pdb_for)}, PodMonitors for {sorted(scraped)}")
    return problems, summary


# ---- self-test: each mutation breaks one thing; the check must report it (message containing `expect`).
def find(resources, kind, name):
    for _, res in resources:
        if res.get("kind") == kind and res["metadata"]["name"] == name:
            return res
    raise LookupError(f"{kind}/{name} not found (the self-test expects the shipped manifests' names)")


def container(resources, name):
    return find(resources, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def replace_key(mapping, old, new, value):
    del mapping[old]
    mapping[new] = value


def set_arg(c, flag, value):
    c["args"][c["args"].index(flag) + 1] = value


MUTATIONS = [
    ("worker Deployment selector does not match its pods",
     lambda r: find(r, "Deployment", "celeriac-worker")["spec"]["selector"]["matchLabels"].update(
         {"app.kubernetes.io/name": "celeriac-wrker"}), "does not match its pod template"),
    ("beat pod labels changed, selector left",
     lambda r: find(r, "Deployment", "celeriac-beat")["spec"]["template"]["metadata"]["labels"].update(
         {"app.kubernetes.io/name": "beat"}), "does not match its pod template"),
    ("PDB selects the beat pods",
     lambda r: find(r, "PodDisruptionBudget", "celeriac-worker")["spec"]["selector"]["matchLabels"].update(
         {"app.kubernetes.io/name": "celeriac-beat"}), "no PodDisruptionBudget selects the worker pods"),
    ("PDB minAvailable equals the replicas",
     lambda r: replace_key(find(r, "PodDisruptionBudget", "celeriac-worker")["spec"], "maxUnavailable", "minAvailable", 2),
     "leaves no eviction"),
    ("PodMonitor port is not the metrics port name",
     lambda r: find(r, "PodMonitor", "celeriac-workers")["spec"]["podMetricsEndpoints"][0].update({"port": "http"}),
     "is not the metrics container port"),
    ("PodMonitor path is not /metrics",
     lambda r: find(r, "PodMonitor", "celeriac-beat")["spec"]["podMetricsEndpoints"][0].update({"path": "/metric"}),
     "expected /metrics"),
    ("PodMonitor selects no pods",
     lambda r: find(r, "PodMonitor", "celeriac-workers")["spec"]["selector"]["matchLabels"].update(
         {"app.kubernetes.io/name": "worker"}), "matches no Deployment"),
    ("PodMonitor field typo",
     lambda r: find(r, "PodMonitor", "celeriac-beat")["spec"].update({"podMetricEndpoints": []}), "unknown PodMonitor spec field"),
    ("PodMonitor apiVersion typo is not skipped",
     lambda r: find(r, "PodMonitor", "celeriac-beat").update({"apiVersion": "monitoring.coreos.com/v2"}), "no Kubernetes"),
    ("PodMonitor job label differs from the alerts'",
     lambda r: find(r, "PodMonitor", "celeriac-workers")["spec"]["podMetricsEndpoints"][0].pop("relabelings"),
     "the alerts and dashboards expect"),
    ("beat not scraped",
     lambda r: r.remove(next(x for x in r if x[1].get("kind") == "PodMonitor" and x[1]["metadata"]["name"] == "celeriac-beat")),
     "no PodMonitor scrapes the beat pods"),
    ("worker readiness probe on /healthz",
     lambda r: container(r, "celeriac-worker")["readinessProbe"]["httpGet"].update({"path": "/healthz"}), "expected /readyz"),
    ("beat liveness probe on a wrong port",
     lambda r: container(r, "celeriac-beat")["livenessProbe"]["httpGet"].update({"port": 9808}), "is not the metrics port"),
    ("beat liveness probe on /readyz",
     lambda r: container(r, "celeriac-beat")["livenessProbe"]["httpGet"].update({"path": "/readyz"}), "expected /healthz"),
    ("worker --metrics-port differs from the container port",
     lambda r: set_arg(container(r, "celeriac-worker"), "--metrics-port", "9000"), "but the \"metrics\" container port is"),
    ("metrics container port renamed",
     lambda r: container(r, "celeriac-beat")["ports"][0].update({"name": "prom"}), "no container port named"),
    ("beat with one replica",
     lambda r: find(r, "Deployment", "celeriac-beat")["spec"].update({"replicas": 1}), "beat runs 2"),
    ("beat state file on the read-only root",
     lambda r: set_arg(container(r, "celeriac-beat"), "--state", "/tmp/state.json"), "not on a writable volume"),
    ("unknown field in the worker Deployment (strict schema)",
     lambda r: container(r, "celeriac-worker").update({"livenesProbe": {}}), "Additional properties"),
    ("secretKeyRef to a missing key",
     lambda r: container(r, "celeriac-beat")["env"][0]["valueFrom"]["secretKeyRef"].update({"key": "BROKER"}), "has no key"),
    ("HPA targets a missing Deployment",
     lambda r: find(r, "HorizontalPodAutoscaler", "celeriac-worker")["spec"]["scaleTargetRef"].update({"name": "celeriac"}),
     "is no Deployment here"),
]


def self_test(resources, versions, prometheus_config):
    problems, _ = check(resources, versions, prometheus_config)
    if problems:
        print("the unmodified manifests fail, so the self-test cannot run:")
        print("\n".join(problems))
        return 1
    accepted = []
    for title, mutate, expect in MUTATIONS:
        broken = copy.deepcopy(resources)
        try:
            mutate(broken)
        except (LookupError, KeyError, ValueError, IndexError, StopIteration) as e:
            accepted.append(f"{title}: could not break the manifests this way ({e!r})")
            continue
        problems, _ = check(broken, versions, prometheus_config)
        if not any(expect in p for p in problems):
            accepted.append(f"{title}: not rejected with {expect!r}; reported: {problems or 'nothing'}")
    if accepted:
        print("\n".join(accepted))
        return 1
    print(f"{len(MUTATIONS)} broken variants, each rejected")
    return 0


def main(argv):
    args, prometheus_config, mode = [], None, "check"
    it = iter(argv)
    for a in it:
        if a == "--self-test": mode = "self-test"
        elif a == "--prometheus-config": prometheus_config = next(it, None)
        elif a.startswith("-"): print(f"unknown option {a}"); return 2
        else: args.append(a)
    if len(args) != 1 or not os.path.isdir(args[0]):
        print(__doc__); return 2
    resources = load(args[0])
    if not resources:
        print(f"no manifests in {args[0]}"); return 1
    versions = [OLDEST_K8S, kv.latest_version()]
    if mode == "self-test":
        return self_test(resources, versions, prometheus_config)
    problems, summary = check(resources, versions, prometheus_config)
    if problems:
        print("\n".join(problems)); return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
