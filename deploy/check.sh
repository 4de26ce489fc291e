#!/usr/bin/env bash
# Validates the deploy files with the tools made for them (no docker engine or cluster needed):
# the compose file (docker-compose config), the kustomize output against the Kubernetes schemas
# (kubectl kustomize + kubernetes-validate --strict), the Dockerfile (dockerfilelint), and the
# OpenTelemetry Collector's pipelines.
# .ci/run installs the tools; that the job in them is one influx2td accepts is a cargo test
# (tests/deploy.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "docker-compose config"
docker-compose -f deploy/docker-compose.yml --profile observability --profile influxdb2 --profile console config -q

# No otelcol binary here: check that the collector's file parses and that every pipeline names
# components it defines (what `otelcol validate` would refuse first).
echo "deploy/otel-collector.yaml"
python3 - deploy/otel-collector.yaml <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
pipelines = config["service"]["pipelines"]
assert pipelines, "no pipelines"
for name, pipeline in pipelines.items():
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline.get(kind, []):
            assert component in (config.get(kind) or {}), f"{name}: {kind} {component} is not defined"
assert "4318" in config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
PY

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
for directory in deploy/k8s/base deploy/k8s/overlays/example; do
    echo "kubectl kustomize $directory | kubernetes-validate"
    kubectl kustomize "$directory" > "$rendered"
    # An empty rendering would validate: make sure every object is there.
    objects=$(grep -c '^kind:' "$rendered" || true)
    if [ "$objects" -lt 12 ]; then
        echo "kustomize rendered $objects objects from $directory, expected 12" >&2
        exit 1
    fi
    kubernetes-validate --strict --quiet --kubernetes-version 1.30.0 "$rendered"
done

# KEDA and Prometheus Operator resources: no schema here for custom resources; they must render.
echo "kubectl kustomize deploy/k8s/extras"
kubectl kustomize deploy/k8s/extras > "$rendered"
[ "$(grep -c '^kind:' "$rendered")" -eq 3 ]

# No helm binary here: check the NATS chart's values (a 3-server JetStream cluster on file
# storage) and that the cluster has at least as many servers as the job keeps copies.
echo "deploy/k8s/nats-values.yaml"
python3 - deploy/k8s/nats-values.yaml deploy/k8s/base/job-config.yaml <<'PY'
import re, sys, tomllib, yaml
values = yaml.safe_load(open(sys.argv[1]))["config"]
assert values["cluster"]["enabled"] is True, "cluster.enabled"
servers = values["cluster"]["replicas"]
assert values["jetstream"]["enabled"] is True, "jetstream.enabled"
assert values["jetstream"]["fileStore"]["pvc"]["enabled"] is True, "jetstream on file storage"
config_map = yaml.safe_load(open(sys.argv[2]))
job = tomllib.loads(config_map["data"]["job.toml"])
copies = job["nats"]["replicas"]
assert 1 <= copies <= servers, f"nats.replicas = {copies}, but the chart runs {servers} servers"
assert servers >= 3, f"the chart runs {servers} servers: a cluster that may lose one needs 3"
PY

echo "docker-compose config (+ the 3-server NATS cluster)"
docker-compose -f deploy/docker-compose.yml -f deploy/docker-compose.nats-cluster.yml config -q

echo "dockerfilelint deploy/Dockerfile"
dockerfilelint deploy/Dockerfile
