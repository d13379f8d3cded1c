#!/usr/bin/env bash
# Checks the deployment recipes offline; run from anywhere. Called by .ci/run.
#   - systemd unit:   systemd-analyze verify (ExecStart pointed at a built binary),
#                     alone and with the PostgreSQL drop-in
#   - settings:       `bookcal config check` on the example and both ConfigMaps' TOML
#   - Kubernetes:     yamllint, then kubernetes-validate --strict (bundled schemas), for
#                     the single sled form (k8s/) and the replicated one (k8s-replicated/)
#   - Containerfile:  a structural check (stages, non-root USER, VOLUME, EXPOSE,
#                     HEALTHCHECK); no image is built (no container registry here)
# Needs: a built bookcal (BOOKCAL_BIN, default target/debug/bookcal) and a Python
# with yamllint and kubernetes-validate (BOOKCAL_PYTHON, as .ci/run installs).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${BOOKCAL_BIN:-target/debug/bookcal}"
py="${BOOKCAL_PYTHON:-python3}"
pybin="$(dirname "$py")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -x "$bin" ] || cargo build --quiet --bin bookcal
bin="$(realpath "$bin")"

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
  sed "s|/usr/local/bin/bookcal|$bin|" deploy/systemd/bookcal.service > "$work/bookcal.service"
  # verify prints problems but exits 0 for some of them: any output is a failure.
  out="$(systemd-analyze verify "$work/bookcal.service" 2>&1 || true)"
  if [ -n "$out" ]; then echo "$out"; exit 1; fi
  grep -q '^ExecStart=/usr/local/bin/bookcal serve --config /etc/bookcal/bookcal.toml$' deploy/systemd/bookcal.service
  # With the PostgreSQL drop-in in the unit's .d directory.
  mkdir -p "$work/bookcal.service.d"
  cp deploy/systemd/bookcal.service.d/postgres.conf "$work/bookcal.service.d/"
  out="$(systemd-analyze verify "$work/bookcal.service" 2>&1 || true)"
  if [ -n "$out" ]; then echo "$out"; exit 1; fi
  grep -q '^Environment=BOOKCAL_STORE_URL_FILE=%d/store_url$' deploy/systemd/bookcal.service.d/postgres.conf
  echo ok
else
  echo "skipped: systemd-analyze not installed (Debian package systemd)"
fi

echo "== settings"
"$bin" config example | diff -u deploy/bookcal.example.toml -
env -u BOOKCAL_CONFIG "$bin" config check deploy/bookcal.example.toml
for dir in k8s k8s-replicated; do
  "$py" - "$work/configmap.toml" "deploy/$dir/configmap.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[2]))
open(sys.argv[1], "w").write(doc["data"]["bookcal.toml"])
PY
  # The key files are the Secret's, mounted only in the cluster: the settings alone.
  env -u BOOKCAL_CONFIG -u BOOKCAL_STORE_URL "$bin" config check --settings-only "$work/configmap.toml"
done

echo "== Kubernetes manifests"
"$pybin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
  deploy/k8s deploy/k8s-replicated
manifests=()
for f in deploy/k8s/*.yaml deploy/k8s-replicated/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
"$pybin/kubernetes-validate" --strict --quiet "${manifests[@]}"
"$py" - <<'PY'
import os, yaml
# Every kustomization lists exactly the manifests of its directory.
for d in ("deploy/k8s", "deploy/k8s-replicated"):
    k = yaml.safe_load(open(f"{d}/kustomization.yaml"))
    files = sorted(f for f in os.listdir(d) if f.endswith(".yaml") and f != "kustomization.yaml")
    assert sorted(k["resources"]) == files, f"{d}: {k['resources']} != {files}"
PY
"$py" - <<'PY'
import yaml

def long_start(c):
    # A long start (a large store opening, the first start's backfill) must not be
    # killed by liveness: a startup probe on /health with a generous budget.
    s = c["startupProbe"]
    assert s["httpGet"]["path"] == "/health"
    assert s["periodSeconds"] * s["failureThreshold"] >= 900, "at least 15 minutes to start"

d = yaml.safe_load(open("deploy/k8s/deployment.yaml"))
spec = d["spec"]
assert spec["replicas"] == 1, "sled is single-writer: replicas must be 1"
assert spec["strategy"]["type"] == "Recreate", "sled is single-writer: strategy must be Recreate"
pod = spec["template"]["spec"]
c = pod["containers"][0]
assert c["livenessProbe"]["httpGet"]["path"] == "/health"
assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
long_start(c)
assert pod["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["readOnlyRootFilesystem"] is True
assert pod["terminationGracePeriodSeconds"] > 30, "longer than shutdown_timeout_secs"

# The replicated form: PostgreSQL from the Secret, several replicas, no volume.
d = yaml.safe_load(open("deploy/k8s-replicated/deployment.yaml"))
spec = d["spec"]
assert spec["replicas"] >= 2, "the replicated form runs several replicas"
roll = spec["strategy"]
assert roll["type"] == "RollingUpdate" and roll["rollingUpdate"]["maxUnavailable"] == 0
pod = spec["template"]["spec"]
c = pod["containers"][0]
env = {e["name"]: e for e in c["env"]}
ref = env["BOOKCAL_STORE_URL"]["valueFrom"]["secretKeyRef"]
secret = yaml.safe_load(open("deploy/k8s-replicated/secret.yaml"))
assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
assert secret["stringData"][ref["key"]].startswith("postgres://")
assert not any("persistentVolumeClaim" in v for v in pod["volumes"]), "no volume: state is in the database"
assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
assert c["livenessProbe"]["httpGet"]["path"] == "/health"
long_start(c)
assert pod["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["readOnlyRootFilesystem"] is True
assert pod["terminationGracePeriodSeconds"] > 30, "longer than shutdown_timeout_secs"
pdb = yaml.safe_load(open("deploy/k8s-replicated/pdb.yaml"))
assert pdb["spec"]["minAvailable"] < spec["replicas"]
print("ok")
PY

echo "== Containerfile"
"$py" - <<'PY'
import re, shlex
known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
         "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
text = open("deploy/container/Containerfile").read()
# Join continuation lines, drop comments and blanks.
lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
joined = re.sub(r"\\\n", " ", "\n".join(lines))
instrs = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "")
          for l in joined.splitlines() if l.strip()]
for op, _ in instrs:
    assert op in known, f"unknown instruction {op}"
assert instrs[0][0] in ("FROM", "ARG"), "must start with FROM"
stages, final = [], []
for op, arg in instrs:
    if op == "FROM":
        words = arg.split()
        stages.append(words[2] if len(words) > 2 and words[1].upper() == "AS" else None)
        final = []
    final.append((op, arg))
    if op == "COPY" and "--from=" in arg:
        src = re.search(r"--from=(\S+)", arg).group(1)
        assert src in stages[:-1], f"COPY --from={src}: no such earlier stage"
assert len(stages) >= 2, "multi-stage build expected"
ops = {op: arg for op, arg in final}
user = ops.get("USER", "root").split(":")[0]
assert user not in ("root", "0"), "the runtime stage must run as a non-root USER"
assert "/var/lib/bookcal" in ops.get("VOLUME", ""), "VOLUME /var/lib/bookcal"
assert "8080" in ops.get("EXPOSE", ""), "EXPOSE 8080"
assert "/health" in ops.get("HEALTHCHECK", ""), "HEALTHCHECK on /health"
# A long start (see the manifests' startup probes) is not counted against health.
start = re.search(r"--start-period=(\d+)([smh])", ops["HEALTHCHECK"])
assert start and int(start.group(1)) * {"s": 1, "m": 60, "h": 3600}[start.group(2)] >= 900, \
    "HEALTHCHECK --start-period of at least 15 minutes"
for op, arg in final:
    if op in ("CMD", "ENTRYPOINT") and arg.startswith("["):
        import json; json.loads(arg)
print("ok")
PY
echo "deploy checks passed"
