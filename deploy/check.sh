#!/usr/bin/env bash
# Checks the deployment recipes offline; run from anywhere. Called by .ci/run.
#   - systemd unit:   systemd-analyze verify (ExecStart pointed at a built binary)
#   - settings:       `bookcal config check` on the example and the ConfigMap's TOML
#   - Kubernetes:     yamllint, then kubernetes-validate --strict (bundled schemas)
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
  echo ok
else
  echo "skipped: systemd-analyze not installed (Debian package systemd)"
fi

echo "== settings"
"$bin" config example | diff -u deploy/bookcal.example.toml -
env -u BOOKCAL_CONFIG "$bin" config check deploy/bookcal.example.toml
"$py" - "$work/configmap.toml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["bookcal.toml"])
PY
env -u BOOKCAL_CONFIG "$bin" config check "$work/configmap.toml"

echo "== Kubernetes manifests"
"$pybin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' deploy/k8s
manifests=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
"$pybin/kubernetes-validate" --strict --quiet "${manifests[@]}"
"$py" - <<'PY'
import yaml
d = yaml.safe_load(open("deploy/k8s/deployment.yaml"))
spec = d["spec"]
assert spec["replicas"] == 1, "sled is single-writer: replicas must be 1"
assert spec["strategy"]["type"] == "Recreate", "sled is single-writer: strategy must be Recreate"
pod = spec["template"]["spec"]
c = pod["containers"][0]
assert c["livenessProbe"]["httpGet"]["path"] == "/health"
assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
assert pod["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["readOnlyRootFilesystem"] is True
assert pod["terminationGracePeriodSeconds"] > 30, "longer than shutdown_timeout_secs"
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
for op, arg in final:
    if op in ("CMD", "ENTRYPOINT") and arg.startswith("["):
        import json; json.loads(arg)
print("ok")
PY
echo "deploy checks passed"
