// Offline schema validation of rendered Kubernetes manifests
// (tests/e2e/test_manifests.sh): every object of every multi-document YAML
// file named on the command line is checked against the Kubernetes API's
// schema (kubernetes-models) or, for the ServiceMonitor, the Prometheus
// Operator's CRD (@kubernetes-models/prometheus-operator). Prints one line
// per object ("ok KIND NAME" or "invalid KIND NAME: why"); exits 1 if any
// object is invalid or has no model, 2 on bad usage.
"use strict";
const fs = require("fs");
const YAML = require("yaml");

const CRDS = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };

function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  const pkg = CRDS[group] || "kubernetes-models";
  const mod = require(`${pkg}/${apiVersion}/${kind}`);
  if (!mod[kind]) throw new Error(`${pkg} has no ${apiVersion} ${kind}`);
  return mod[kind];
}

if (process.argv.length < 3) {
  console.error("usage: node validate.cjs FILE.yaml...");
  process.exit(2);
}
let bad = 0, n = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (doc.errors.length) { console.log(`invalid YAML in ${file}: ${doc.errors[0].message}`); bad++; continue; }
    const obj = doc.toJSON();
    if (obj === null) continue;
    n++;
    const what = `${obj.kind} ${(obj.metadata || {}).name}`;
    try {
      const Model = modelFor(String(obj.apiVersion), String(obj.kind));
      new Model(obj).validate();
      console.log(`ok ${what}`);
    } catch (e) {
      console.log(`invalid ${what}: ${String(e.message).split("\n")[0].slice(0, 300)}`);
      bad++;
    }
  }
}
console.log(`${n} objects, ${bad} invalid`);
process.exit(bad || n === 0 ? 1 : 0);
