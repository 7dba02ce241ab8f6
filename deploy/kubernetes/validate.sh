#!/usr/bin/env bash
# Validates the Kubernetes manifests of this directory offline, against the Kubernetes
# OpenAPI schemas that PyPI's kubernetes-validate ships (no cluster needed), then checks
# that kustomization.yaml lists exactly those manifests and that the objects refer to one
# another consistently (selectors, serviceName).
#
# usage: validate.sh [VENV] [DIR]
#   VENV  python virtual environment to use; created if missing, kubernetes-validate is
#         installed into it with pip if missing
#         (default: $KILN_CI_VENV, else /opt/kiln-test-venv)
#   DIR   directory of the manifests (default: the directory of this script)
# env:
#   KUBERNETES_VERSION           Kubernetes version to validate against (default 1.30)
#   KUBERNETES_VALIDATE_VERSION  kubernetes-validate version pip installs (default 1.37.0)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${1:-${KILN_CI_VENV:-/opt/kiln-test-venv}}
dir=${2:-$here}
k8s_version=${KUBERNETES_VERSION:-1.30}
kv_version=${KUBERNETES_VALIDATE_VERSION:-1.37.0}

if [[ ! -d $dir ]]; then
    echo "validate.sh: no directory $dir" >&2
    exit 2
fi

if [[ ! -x $venv/bin/python ]]; then
    echo "validate.sh: creating the virtual environment $venv"
    python3 -m venv "$venv"
fi
kv=$venv/bin/kubernetes-validate
if [[ ! -x $kv ]]; then
    echo "validate.sh: installing kubernetes-validate==$kv_version into $venv"
    start=$SECONDS
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$kv_version"
    echo "validate.sh: installed in $((SECONDS - start))s"
fi
echo "validate.sh: kubernetes-validate $("$kv" --version), Kubernetes $k8s_version, manifests in $dir"

shopt -s nullglob
manifests=()
for f in "$dir"/*.yaml "$dir"/*.yml; do
    [[ $(basename "$f") == kustomization.yaml || $(basename "$f") == kustomization.yml ]] && continue
    manifests+=("$f")
done
if ((${#manifests[@]} == 0)); then
    echo "validate.sh: no manifests (*.yaml) in $dir" >&2
    exit 1
fi

failed=()
for f in "${manifests[@]}"; do
    # kubernetes-validate exits 0 when it has no schema for a kind or apiVersion (it only
    # warns) and for a file without any object: count those as failures too.
    rc=0
    out=$("$kv" --strict -k "$k8s_version" "$f" 2>&1) || rc=$?
    printf '%s\n' "$out"
    if ((rc != 0)) || grep -qE '^(WARN|ERROR|FATAL)' <<<"$out" || ! grep -q ' passed for resource ' <<<"$out"; then
        echo "FAILED $f" >&2
        failed+=("$f")
    fi
done

# Cross-references that the schemas cannot see (the API server checks some at apply time).
rc=0
"$venv/bin/python" - "$dir" "${manifests[@]}" <<'PY' || rc=$?
import os, sys
import yaml

directory, files = sys.argv[1], sys.argv[2:]
errors = []
objects = []
for path in files:
    try:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
    except yaml.YAMLError:
        continue  # reported above
    objects += [(path, doc) for doc in docs if isinstance(doc, dict)]

for name in ("kustomization.yaml", "kustomization.yml"):
    path = os.path.join(directory, name)
    if os.path.exists(path):
        with open(path) as f:
            listed = (yaml.safe_load(f) or {}).get("resources") or []
        present = {os.path.basename(p) for p in files}
        for r in listed:
            if r not in present:
                errors.append(f"{path}: lists {r}, which is not a manifest here")
        for p in sorted(present - set(listed)):
            errors.append(f"{path}: does not list {p}")

def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())

def cross_check():
    services = {(o.get("metadata", {}).get("namespace"), o["metadata"]["name"]): (p, o)
                for p, o in objects if o.get("kind") == "Service"}
    pods = [(p, o) for p, o in objects if o.get("kind") in ("StatefulSet", "Deployment", "DaemonSet")]
    for path, o in pods:
        name = f"{o['kind']}/{o['metadata']['name']}"
        labels = o["spec"]["template"].get("metadata", {}).get("labels", {})
        if not labels_match(o["spec"]["selector"].get("matchLabels"), labels):
            errors.append(f"{path}: {name}: spec.selector does not match the pod template's labels")
        if o["kind"] == "StatefulSet":
            key = (o["metadata"].get("namespace"), o["spec"].get("serviceName"))
            if key not in services:
                errors.append(f"{path}: {name}: serviceName {key[1]} is not a Service here")
        claims = {t["metadata"]["name"] for t in o["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"] for v in o["spec"]["template"]["spec"].get("volumes", [])} | claims
        for c in o["spec"]["template"]["spec"]["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    errors.append(f"{path}: {name}: container {c['name']} mounts unknown volume {m['name']}")
    for path, o in objects:
        kind = o.get("kind")
        if kind == "Service" and o["spec"].get("selector"):
            if not any(labels_match(o["spec"]["selector"], w["spec"]["template"]["metadata"].get("labels", {}))
                       for _, w in pods):
                errors.append(f"{path}: Service/{o['metadata']['name']}: selector matches no pod template")
        if kind == "PodDisruptionBudget":
            sel = o["spec"].get("selector", {}).get("matchLabels")
            if not any(labels_match(sel, w["spec"]["template"]["metadata"].get("labels", {})) for _, w in pods):
                errors.append(f"{path}: PodDisruptionBudget/{o['metadata']['name']}: selector matches no pod template")

try:
    cross_check()
except (KeyError, TypeError, AttributeError) as e:
    errors.append(f"malformed object, cross-references not checked ({type(e).__name__}: {e})")

for e in errors:
    print("ERROR " + e)
if not errors:
    print(f"INFO cross-references of {len(objects)} objects are consistent")
sys.exit(1 if errors else 0)
PY
if ((rc != 0)); then
    echo "FAILED cross-references" >&2
    failed+=("cross-references")
fi

# `kubectl kustomize` builds the kustomization offline; only when kubectl is installed.
if [[ -e $dir/kustomization.yaml ]]; then
    if command -v kubectl >/dev/null; then
        if kubectl kustomize "$dir" >/dev/null; then
            echo "INFO kubectl kustomize $dir builds"
        else
            echo "FAILED kubectl kustomize $dir" >&2
            failed+=("$dir/kustomization.yaml")
        fi
    else
        echo "validate.sh: kubectl not installed, kustomization build not checked"
    fi
fi

if ((${#failed[@]} != 0)); then
    echo "validate.sh: ${#failed[@]} failure(s): ${failed[*]}" >&2
    exit 1
fi
echo "validate.sh: all ${#manifests[@]} manifests valid"
