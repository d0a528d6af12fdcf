#!/usr/bin/env bash
# kycd-test: once
# The Kubernetes manifests (deploy/kubernetes: a kustomize base and an
# example overlay), rendered with `kubectl kustomize` and validated offline:
# every rendered object against the Kubernetes API's schema (npm package
# kubernetes-models), the ServiceMonitor against the Prometheus Operator's
# CRD (@kubernetes-models/prometheus-operator), both pinned in
# tests/k8s/package.json + package-lock.json and installed by `npm ci` into a
# cache under the build folder. Then what the deployment promises: a spool
# volume per replica, probes on the admin listener, secrets as files, the
# measured resource requests, a PodDisruptionBudget, a migrate Job, and a
# kycd.conf whose every key kycd knows. The validator must refuse
# deliberately broken objects (a StatefulSet, a ServiceMonitor).
#
# Must never: reach a cluster (there is none), leave files outside its temp
# folder and the cache.
#
# Environment: TEST_KYCD_BIN, TEST_PG (lib.sh); TEST_K8S_CACHE (default:
# k8s-validate beside TEST_KYCD_BIN); kubectl, node and npm on PATH.

why=''
for tool in kubectl node npm; do
  command -v "$tool" >/dev/null 2>&1 || why="${why:+$why, }$tool is not installed"
done
if [ -n "$why" ]; then
  echo "SKIP: test_manifests: $why"
  exit 77
fi

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S=$TEST_KYCD_SRC/deploy/kubernetes
CACHE=${TEST_K8S_CACHE:-$(dirname "$TEST_KYCD_BIN")/k8s-validate}
VALIDATE=(node "$CACHE/validate.cjs")

# ------------------------------------------------------------------------------
e2e_section "the validator: npm ci (cached by package-lock.json)"
t0=$(e2e_ms)
mkdir -p "$CACHE"
if ! cmp -s "$TEST_KYCD_SRC/tests/k8s/package-lock.json" "$CACHE/package-lock.json" ||
   [ ! -d "$CACHE/node_modules/kubernetes-models" ]; then
  cp -- "$TEST_KYCD_SRC/tests/k8s/package.json" "$TEST_KYCD_SRC/tests/k8s/package-lock.json" "$CACHE/"
  if ! (cd "$CACHE" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$E2E_TMP/npm.log" 2>&1; then
    sed 's/^/  npm: /' "$E2E_TMP/npm.log" | tail -n 20
    e2e_abort "npm ci of tests/k8s failed"
  fi
fi
cp -- "$TEST_KYCD_SRC/tests/k8s/validate.cjs" "$CACHE/validate.cjs"
pass "kubernetes-models $(node -p "require('$CACHE/node_modules/kubernetes-models/package.json').version")," \
  "@kubernetes-models/prometheus-operator $(node -p "require('$CACHE/node_modules/@kubernetes-models/prometheus-operator/package.json').version") ready in $(( $(e2e_ms) - t0 )) ms"

# ------------------------------------------------------------------------------
e2e_section "kubectl kustomize: base and example overlay"
for dir in base overlays/example; do
  out=$E2E_TMP/$(basename "$dir").yaml
  if kubectl kustomize "$K8S/$dir" >"$out" 2>"$E2E_TMP/kustomize.err"; then
    pass "kubectl kustomize deploy/kubernetes/$dir renders $(grep -c '^kind:' "$out") objects"
  else
    fail "kubectl kustomize deploy/kubernetes/$dir: $(head -n 3 "$E2E_TMP/kustomize.err")"
  fi
done
BASE=$E2E_TMP/base.yaml
OVER=$E2E_TMP/example.yaml
kinds=$(grep -h '^kind:' "$BASE" | sort | tr '\n' ' ')
assert_eq "kind: ConfigMap kind: Job kind: NetworkPolicy kind: PodDisruptionBudget kind: Service kind: Service kind: ServiceAccount kind: ServiceMonitor kind: StatefulSet " \
  "$kinds" "the base has the ConfigMap, Job, NetworkPolicy, PodDisruptionBudget, two Services, ServiceAccount, ServiceMonitor, StatefulSet"

# ------------------------------------------------------------------------------
e2e_section "schema validation of every rendered object"
for f in "$BASE" "$OVER"; do
  if out=$("${VALIDATE[@]}" "$f" 2>&1); then
    pass "$(basename "$f"): $(tail -n 1 <<<"$out") ($(grep '^ok ' <<<"$out" | cut -d' ' -f2 | tr '\n' ' '))"
  else
    fail "$(basename "$f"): $(grep -v '^ok ' <<<"$out" | head -n 5)"
  fi
done

# A broken StatefulSet (replicas as a string, a CPU request that is no
# quantity) and a broken ServiceMonitor (endpoints not a list) are refused.
sed -e 's/^  replicas: 3$/  replicas: three/' -e 's/^            cpu: 100m$/            cpu: a-lot/' "$BASE" >"$E2E_TMP/broken-sts.yaml"
assert_ne "$(cat "$BASE")" "$(cat "$E2E_TMP/broken-sts.yaml")" "the broken copy differs from the base"
out=$("${VALIDATE[@]}" "$E2E_TMP/broken-sts.yaml" 2>&1) && rc=0 || rc=$?
assert_eq 1 "$rc" "the validator refuses the broken StatefulSet"
assert_contains "$out" "invalid StatefulSet kycd: data/spec/replicas must be integer" "and names the field (spec.replicas)"
assert_match "$out" 'resources/requests/cpu must' "and the bad CPU quantity"
node -e '
  const YAML = require(process.argv[1] + "/node_modules/yaml");
  const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[2], "utf8")).map(d => d.toJSON());
  for (const o of docs) if (o.kind === "ServiceMonitor") o.spec.endpoints = "every-30s";
  process.stdout.write(docs.map(o => YAML.stringify(o)).join("---\n"));
' "$CACHE" "$BASE" >"$E2E_TMP/broken-sm.yaml"
out=$("${VALIDATE[@]}" "$E2E_TMP/broken-sm.yaml" 2>&1) && rc=0 || rc=$?
assert_eq 1 "$rc" "the validator refuses the broken ServiceMonitor (CRD model)"
assert_contains "$out" "invalid ServiceMonitor kycd: data/spec/endpoints must be array" "and names spec.endpoints"

# ------------------------------------------------------------------------------
e2e_section "what the deployment promises"
# jq-free field checks: the rendered objects as JSON lines, read with node.
for f in base example; do
  node -e '
    const YAML = require(process.argv[1] + "/node_modules/yaml");
    for (const d of YAML.parseAllDocuments(require("fs").readFileSync(process.argv[2], "utf8")))
      console.log(JSON.stringify(d.toJSON()));
  ' "$CACHE" "$E2E_TMP/$f.yaml" >"$E2E_TMP/$f.jsonl"
done
# qf FILE KIND EXPR: EXPR (JavaScript, on o) for each object of KIND in the
# rendered FILE (base or example); q KIND EXPR: the same in the base.
qf() {
  node -e '
    const [kind, expr] = process.argv.slice(2);
    for (const line of require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
      const o = JSON.parse(line);
      if (o.kind === kind) { const v = eval(expr); console.log(typeof v === "string" ? v : JSON.stringify(v)); }
    }' "$E2E_TMP/$1.jsonl" "$2" "$3"
}
q() { qf base "$@"; }
C='o.spec.template.spec.containers[0]'
assert_eq spool "$(q StatefulSet 'o.spec.volumeClaimTemplates[0].metadata.name')" \
  "each replica has its own spool PersistentVolumeClaim (volumeClaimTemplates)"
assert_eq /var/spool/kycd "$(q StatefulSet "$C.volumeMounts.find(m => m.name === 'spool').mountPath")" \
  "mounted at the image's spool volume, /var/spool/kycd"
assert_eq "/healthz admin HTTPS /readyz admin HTTPS /healthz admin HTTPS" \
  "$(q StatefulSet "[$C.livenessProbe, $C.readinessProbe, $C.startupProbe].map(p => p.httpGet.path + ' ' + p.httpGet.port + ' ' + p.httpGet.scheme).join(' ')")" \
  "liveness, readiness and startup probes on the admin listener, over HTTPS (it is not on loopback)"
assert_eq "KYCD_WEBHOOK_TOKENS_FILE KYCD_DATABASE_URL_FILE KYCD_P100_API_KEY_FILE" \
  "$(q StatefulSet "$C.env.filter(e => e.name.endsWith('_FILE')).map(e => e.name).join(' ')")" \
  "secrets reach kycd as files (*_FILE)"
assert_eq "" "$(q StatefulSet "$C.env.filter(e => /TOKEN|KEY|PASSWORD/.test(e.name) && !e.name.endsWith('_FILE')).map(e => e.name).join(' ')")" \
  "no secret in a plain environment variable"
assert_eq "kycd-secrets kycd-tls" "$(q StatefulSet "o.spec.template.spec.volumes.filter(v => v.secret).map(v => v.secret.secretName).join(' ')")" \
  "the Secrets kycd-secrets and kycd-tls are mounted"
assert_eq 'requests 100m 64Mi, limit 256Mi' "$(q StatefulSet "'requests ' + $C.resources.requests.cpu + ' ' + $C.resources.requests.memory + ', limit ' + $C.resources.limits.memory")" \
  "resource requests from the measured figures"
assert_eq "true 999" "$(q StatefulSet "o.spec.template.spec.securityContext.runAsNonRoot + ' ' + o.spec.template.spec.securityContext.runAsUser")" \
  "runs as the image's non-root kycd user (999)"
assert_eq 1 "$(q PodDisruptionBudget 'o.spec.maxUnavailable')" "the PodDisruptionBudget lets one receiver go at a time"
assert_eq '["migrate"]' "$(q Job "o.spec.template.spec.containers[0].args")" "the Job runs kycd migrate"
assert_eq "$(q StatefulSet "$C.image")" "$(q Job 'o.spec.template.spec.containers[0].image')" "with the same image as the receivers"
assert_eq "admin /metrics https" "$(q ServiceMonitor "o.spec.endpoints[0].port + ' ' + o.spec.endpoints[0].path + ' ' + o.spec.endpoints[0].scheme")" \
  "the ServiceMonitor scrapes /metrics on the admin port, over HTTPS"
# The job label the Prometheus Operator gives the ServiceMonitor's targets:
# the value of the Service's jobLabel label, else the Service's name. The
# alert rules' up{job="kycd"} (KycdDown, KycdMetricsAbsent) need "kycd".
rules_job=$(sed -n 's/^ *expr: up{job="\([^"]*\)"} == 0$/\1/p' "$TEST_KYCD_SRC/deploy/prometheus/kycd-alerts.yml")
assert_eq kycd "$rules_job" "KycdDown looks for the job kycd"
for f in base example; do
  job=$(node -e '
    const objs = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
    const sm = objs.find(o => o.kind === "ServiceMonitor");
    const sel = sm.spec.selector.matchLabels;
    const svcs = objs.filter(o => o.kind === "Service" &&
      Object.entries(sel).every(([k, v]) => (o.metadata.labels || {})[k] === v));
    if (svcs.length !== 1) { console.log("selects " + svcs.length + " Services"); process.exit(0); }
    const l = sm.spec.jobLabel && (svcs[0].metadata.labels || {})[sm.spec.jobLabel];
    console.log(l || svcs[0].metadata.name);' "$E2E_TMP/$f.jsonl")
  assert_eq "$rules_job" "$job" "$f: the Operator names the scrape job $rules_job (the ServiceMonitor's jobLabel), as the alert rules expect"
done
assert_eq webhook "$(q Service "o.metadata.name === 'kycd' ? o.spec.ports[0].targetPort : ''" | grep -v '^$')" \
  "the Service kycd sends port 443 to the webhook port"

# Two database roles: the migrate Job reads the owner's database_url from
# a Secret of its own, the receivers the serving role's from another; no
# Secret is mounted in both.
# db_secret FILE KIND: the Secret whose file KYCD_DATABASE_URL_FILE names.
db_secret() {
  qf "$1" "$2" '(() => {
    const s = o.spec.template.spec, c = s.containers[0];
    const f = c.env.find(e => e.name === "KYCD_DATABASE_URL_FILE").value;
    const m = c.volumeMounts.find(m => f.startsWith(m.mountPath.replace(/\/?$/, "/")));
    const v = m && s.volumes.find(v => v.name === m.name);
    return v && v.secret ? v.secret.secretName : "none";
  })()'
}
secrets_of() { qf "$1" "$2" 'o.spec.template.spec.volumes.filter(v => v.secret).map(v => v.secret.secretName).sort().join(" ")'; }
for f in base example; do
  job_db=$(db_secret "$f" Job) sts_db=$(db_secret "$f" StatefulSet)
  assert_eq "kycd-db-owner kycd-secrets" "$job_db $sts_db" \
    "$f: the Job migrates with the owner's database_url (kycd-db-owner), the receivers serve with the serving role's (kycd-secrets)"
  assert_ne "$job_db" "$sts_db" "$f: the serving role's Secret is not the Job's"
  shared=$(comm -12 <(secrets_of "$f" Job | tr ' ' '\n' | sort) <(secrets_of "$f" StatefulSet | tr ' ' '\n' | sort) | tr '\n' ' ')
  assert_eq "" "$shared" "$f: the Job and the StatefulSet mount no Secret in common"
done

# The NetworkPolicy: it selects the receivers; the webhook port is open to
# any source; the admin port (/metrics, /status) only to Prometheus in its
# namespace, never to every pod of the cluster.
for f in base example; do
  assert_eq "$(qf "$f" StatefulSet 'JSON.stringify(o.spec.template.metadata.labels)')" \
    "$(qf "$f" NetworkPolicy 'JSON.stringify(o.spec.podSelector.matchLabels)')" \
    "$f: the NetworkPolicy selects the receivers' pods"
  assert_eq '["Ingress"]' "$(qf "$f" NetworkPolicy 'o.spec.policyTypes')" "$f: it restricts ingress"
  assert_eq "webhook:any admin:peers" "$(qf "$f" NetworkPolicy 'o.spec.ingress.map(r => r.ports.map(p => p.port).join(",") + ":" + (r.from && r.from.length ? "peers" : "any")).join(" ")')" \
    "$f: the webhook port from any source, the admin port from listed peers only"
  assert_eq ok "$(qf "$f" NetworkPolicy '(() => {
    const peers = o.spec.ingress.find(r => r.ports.some(p => p.port === "admin")).from;
    const bad = peers.filter(p => !p.namespaceSelector || !Object.keys(p.namespaceSelector.matchLabels || {}).length ||
      !p.podSelector || (p.podSelector.matchLabels || {})["app.kubernetes.io/name"] === "kycd" ||
      !(p.podSelector.matchExpressions || []).some(e => e.key === "app.kubernetes.io/name" && e.values.includes("prometheus")));
    return bad.length ? "open to: " + JSON.stringify(bad) : "ok";
  })()')" "$f: each admin peer names a namespace and Prometheus pods (not kycd's own label, which kustomize writes into matchLabels)"
done
assert_eq monitoring "$(q NetworkPolicy 'o.spec.ingress[1].from[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"]')" \
  "the base lets in Prometheus from the namespace monitoring (the overlay's value to adapt)"

# The ConfigMap's kycd.conf, base and overlay: kycd knows every key.
for f in base example; do
  qf "$f" ConfigMap 'o.data["kycd.conf"]' >"$E2E_TMP/$f.kycd.conf"
  conf=$E2E_TMP/$f.kycd.conf
  e2e_kycd_cmd --bare -- config --config "$conf"
  if [ "$E2E_RC" = 0 ]; then
    pass "kycd config reads the $f kycd.conf: every key known"
  else
    fail "kycd config refuses the $f kycd.conf: $(head -n 3 "$E2E_OUT")"
  fi
done
assert_contains "$(cat "$E2E_TMP/example.kycd.conf")" "allow_cidrs = " "the overlay's kycd.conf restricts the webhook senders (allow_cidrs)"
assert_eq "LoadBalancer Local" "$(qf example Service "o.metadata.name === 'kycd' ? o.spec.type + ' ' + o.spec.externalTrafficPolicy : ''" | grep -v '^$')" \
  "the overlay's Service keeps the client's address (LoadBalancer, externalTrafficPolicy Local)"
assert_eq "registry.example.com/kycd:0.1.0 kycd" "$(qf example StatefulSet "o.spec.template.spec.containers[0].image + ' ' + o.metadata.namespace")" \
  "the overlay sets the image and the namespace"
