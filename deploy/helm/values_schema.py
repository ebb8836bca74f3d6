"""Write the chart's values.schema.json: `python deploy/helm/values_schema.py` (`--check` fails if it is stale).

The schema is strict (`additionalProperties: false` at every level, so a misspelt key is refused, not ignored)
and types pod settings with Kubernetes' own definitions (PodSecurityContext, SecurityContext, Probe parts,
Affinity, Toleration, TopologySpreadConstraint, ResourceRequirements, EnvFromSource, NetworkPolicy peers and
ports, IngressTLS, LocalObjectReference) taken from kubernetes-validate's strict schemas for Kubernetes 1.30,
the version the chart is validated against. They are copied into the file, so Helm needs nothing else.
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import importlib_resources

KUBERNETES_VERSION = "1.30.0"
SCHEMA_FILE = Path(__file__).resolve().parent / "revisit" / "values.schema.json"
K8S = "io.k8s.api.core.v1."

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/definitions/{name}"}


def obj(properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    """An object that takes only `properties`."""
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def string_map(values: Schema | None = None) -> Schema:
    """Labels, annotations: string keys to string values."""
    return {"type": "object", "additionalProperties": values or {"type": "string"}}


STRING: Schema = {"type": "string"}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
BOOLEAN: Schema = {"type": "boolean"}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
DURATION: Schema = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$", "description": "Prometheus duration"}
CRON: Schema = {
    "type": "string",
    "description": "Five-field cron schedule (minute hour day-of-month month day-of-week), or a @macro",
    "pattern": r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$",
}
SECRET_KEY_REF = obj({"name": STRING, "key": NON_EMPTY}, required=("name", "key"))
PATH_PREFIX: Schema = {
    "type": "string",
    "pattern": "^/v[0-9]+(/[a-z0-9-]+)*$",
    "description": "A public API path prefix (/v1/...): never /metrics, /readyz or /healthz",
}
OPS_PATHS = ["/metrics", "/readyz", "/healthz", "/docs", "/redoc", "/openapi.json"]
PAGE_PATH: Schema = {
    "type": "string",
    "pattern": "^/([a-z0-9-]+)?$",
    "not": {"anyOf": [{"enum": OPS_PATHS}, {"pattern": "^/v[0-9]+$"}]},
    "description": "A page prefix of the console (/persons) or / (its home page, routed Exact): never an ops path"
    " (/metrics, /readyz, /healthz, /docs, /redoc, /openapi.json) nor an API version (/v1)",
}
IMAGE = obj(
    {
        "repository": NON_EMPTY,
        "tag": STRING,
        "digest": {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"},
        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    }
)
PROBE_TIMING = obj(
    {
        "initialDelaySeconds": {"type": "integer", "minimum": 0},
        "periodSeconds": {"type": "integer", "minimum": 1},
        "timeoutSeconds": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1},
        "successThreshold": {"type": "integer", "minimum": 1},
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
    },
    required=("periodSeconds", "failureThreshold", "timeoutSeconds"),
)
SETTINGS = obj(
    {
        "matchThreshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "identifyMinQuality": {"type": "number", "minimum": 0, "maximum": 1},
        "enrolMinQuality": {"type": "number", "minimum": 0, "maximum": 1},
        "maxVectorsPerPerson": {"type": "integer", "minimum": 1},
        "visitGapMinutes": {"type": "integer", "minimum": 1},
        "returningLookbackDays": {"type": "integer", "minimum": 1},
        "checkpointEveryRecords": {"type": "integer", "minimum": 1},
        "checkpointEverySeconds": {"type": "number", "exclusiveMinimum": 0},
        "previousPublicKeys": STRING,
        "secureCookie": BOOLEAN,
        "signinUrl": {"type": "string", "pattern": "^https://.+"},
    }
)
COMPONENT = obj(
    {
        "enabled": BOOLEAN,
        "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
        "replicaCount": {"type": "integer", "minimum": 0},
        "publicPaths": array(PATH_PREFIX, uniqueItems=True),
        "pagePaths": array(PAGE_PATH, uniqueItems=True),
        "image": obj({"repository": NON_EMPTY, "tag": STRING, "digest": IMAGE["properties"]["digest"]}),
        "command": array(NON_EMPTY, minItems=1),
        "modelPack": obj(
            {
                "existingClaim": {"type": "string", "description": "PVC with the model pack; empty: downloaded"},
                "subPath": STRING,
            }
        ),
        "metrics": {"type": "boolean", "description": "false: the component has no /metrics to scrape"},
        "resources": ref(K8S + "ResourceRequirements"),
        "autoscaling": obj(
            {
                "enabled": BOOLEAN,
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1},
                "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
                "targetMemoryUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            required=("enabled", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"),
        ),
        "settings": SETTINGS,
        "extraEnv": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "extraEnvFrom": array(ref(K8S + "EnvFromSource")),
    },
    required=("enabled", "port", "replicaCount", "resources", "autoscaling"),
)
EGRESS_RULE = obj(
    {
        "ports": array(ref("io.k8s.api.networking.v1.NetworkPolicyPort"), minItems=1),
        "to": array(ref("io.k8s.api.networking.v1.NetworkPolicyPeer")),
    },
    required=("ports",),
)


def backing_service(properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    """A backing service's key: ours only while its subchart is disabled; once enabled (Chart.yaml) it also holds
    the subchart's own values, which that chart validates."""
    properties = {"enabled": BOOLEAN, **properties}
    return {
        "type": "object",
        "required": ["enabled", *required],
        "properties": properties,
        "if": {"properties": {"enabled": {"const": False}}},
        "then": {"properties": {name: True for name in properties}, "additionalProperties": False},
    }


RETAINED_SERVICES = ["ingest", "matcher", "identity", "reporting"]
"""The services with a retention command (audit keeps its chain whole)."""

VALUES = obj(
    {
        "global": {"type": "object", "description": "Helm's own: values shared with subcharts"},
        "image": {**IMAGE, "required": ["repository", "pullPolicy"]},
        "imagePullSecrets": array(ref(K8S + "LocalObjectReference")),
        "nameOverride": STRING,
        "fullnameOverride": STRING,
        "environment": {"enum": ["dev", "test", "production"]},
        "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
        "maxDeliveries": {"type": "integer", "minimum": 1},
        "extraEnvFrom": array(ref(K8S + "EnvFromSource")),
        "nats": backing_service(
            {
                "url": {"type": "string", "pattern": "^(nats|tls)://.+"},
                "streamReplicas": {"type": "integer", "minimum": 1, "maximum": 5},
                "credentials": obj({"secretPrefix": STRING, "key": NON_EMPTY}),
            },
            required=("url",),
        ),
        "postgres": obj(
            {
                "dsnSecret": obj(
                    {
                        "name": NON_EMPTY,
                        "keys": string_map(NON_EMPTY),
                        "migrationKeys": string_map(NON_EMPTY),
                    },
                    required=("name", "keys"),
                )
            },
            required=("dsnSecret",),
        ),
        "postgresql": backing_service({}),
        "milvus": backing_service(
            {"uri": {"type": "string", "pattern": "^https?://.+"}, "tokenSecret": SECRET_KEY_REF}, required=("uri",)
        ),
        "s3": obj(
            {
                "endpoint": {"type": "string", "pattern": "^https?://.+"},
                "publicEndpoint": {"type": "string", "pattern": "^https?://.+"},
                "bucket": NON_EMPTY,
                "region": NON_EMPTY,
                "credentialsSecret": obj(
                    {"name": NON_EMPTY, "accessKeyKey": NON_EMPTY, "secretKeyKey": NON_EMPTY},
                    required=("name", "accessKeyKey", "secretKeyKey"),
                ),
            },
            required=("endpoint", "bucket", "credentialsSecret"),
        ),
        "minio": backing_service({}),
        "jwt": obj(
            {"publicKeySecret": SECRET_KEY_REF, "issuer": NON_EMPTY, "audience": NON_EMPTY},
            required=("publicKeySecret", "issuer", "audience"),
        ),
        "audit": obj({"signingKeySecret": SECRET_KEY_REF}, required=("signingKeySecret",)),
        "services": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z][a-z0-9]*$"},
            "additionalProperties": COMPONENT,
        },
        "serviceAccount": obj({"create": BOOLEAN, "name": STRING, "annotations": string_map()}),
        "podAnnotations": string_map(),
        "podLabels": string_map(),
        "podSecurityContext": ref(K8S + "PodSecurityContext"),
        "containerSecurityContext": ref(K8S + "SecurityContext"),
        "probes": obj(
            {"startup": PROBE_TIMING, "liveness": PROBE_TIMING, "readiness": PROBE_TIMING},
            required=("startup", "liveness", "readiness"),
        ),
        "preStopSeconds": {"type": "integer", "minimum": 0, "maximum": 120},
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
        "priorityClassName": STRING,
        "nodeSelector": string_map(),
        "tolerations": array(ref(K8S + "Toleration")),
        "podAntiAffinity": {"enum": ["soft", "hard", "none"]},
        "topologySpread": obj(
            {
                "enabled": BOOLEAN,
                "maxSkew": {"type": "integer", "minimum": 1},
                "topologyKeys": array(NON_EMPTY, minItems=1, uniqueItems=True),
            },
            required=("enabled", "maxSkew", "topologyKeys"),
        ),
        "affinity": ref(K8S + "Affinity"),
        "topologySpreadConstraints": array(ref(K8S + "TopologySpreadConstraint")),
        "podDisruptionBudget": obj(
            {"enabled": BOOLEAN, "maxUnavailable": {"type": ["integer", "string"]}}, required=("enabled",)
        ),
        "ingress": obj(
            {
                "enabled": BOOLEAN,
                "className": STRING,
                "annotations": string_map(),
                "hosts": array({"type": "string", "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}),
                "tls": array(ref("io.k8s.api.networking.v1.IngressTLS")),
            },
            required=("enabled",),
        ),
        "httpRoute": obj(
            {
                "enabled": BOOLEAN,
                "annotations": string_map(),
                "parentRefs": array(
                    obj(
                        {
                            "group": STRING,
                            "kind": NON_EMPTY,
                            "name": NON_EMPTY,
                            "namespace": NON_EMPTY,
                            "sectionName": NON_EMPTY,
                            "port": PORT,
                        },
                        required=("name",),
                    )
                ),
                "hostnames": array({"type": "string", "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}),
            },
            required=("enabled",),
        ),
        "networkPolicy": obj(
            {
                "enabled": BOOLEAN,
                "ingressFrom": array(ref("io.k8s.api.networking.v1.NetworkPolicyPeer")),
                "egress": {
                    "type": "object",
                    "required": ["dns", "nats", "postgres", "milvus", "s3", "modelDownload"],
                    "additionalProperties": EGRESS_RULE,
                },
                "extraEgress": array(ref("io.k8s.api.networking.v1.NetworkPolicyEgressRule")),
            }
        ),
        "metrics": obj(
            {
                "serviceMonitor": obj(
                    {
                        "enabled": BOOLEAN,
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                        "labels": string_map(),
                    }
                ),
                "prometheusRule": obj({"enabled": BOOLEAN, "labels": string_map()}),
                "dashboards": obj({"enabled": BOOLEAN, "labels": string_map(), "annotations": string_map()}),
            }
        ),
        "retention": obj(
            {
                "enabled": BOOLEAN,
                "schedules": {
                    "type": "object",
                    "description": "Cron schedule of each service's retention job; a service left out has none",
                    "propertyNames": {"enum": RETAINED_SERVICES},
                    "additionalProperties": CRON,
                },
                "resources": ref(K8S + "ResourceRequirements"),
                "activeDeadlineSeconds": {"type": "integer", "minimum": 60},
            }
        ),
        "tests": obj(
            {"enabled": BOOLEAN, "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 300}},
            required=("enabled",),
        ),
    },
    required=("image", "environment", "nats", "postgres", "milvus", "s3", "jwt", "services", "audit"),
)


def kubernetes_definitions() -> Schema:
    folder = importlib_resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    )
    definitions: Schema = json.loads(folder.joinpath("_definitions.json").read_text())["$defs"]
    return definitions


REFERENCE = re.compile(r'"\$ref": "(?:/api/_definitions\.json)?#/(?:\$defs|definitions)/([^"]+)"')


def without_descriptions(node: Any) -> Any:
    """Kubernetes' descriptions would make the file ten times larger; the API reference has them."""
    if isinstance(node, dict):
        return {key: without_descriptions(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [without_descriptions(item) for item in node]
    return node


def referenced_definitions(root: Schema, available: Schema) -> Schema:
    """Every Kubernetes definition `root` reaches, its references rewritten to this file's `definitions`."""
    needed: Schema = {}
    pending = REFERENCE.findall(json.dumps(root))
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        text = REFERENCE.sub(r'"$ref": "#/definitions/\1"', json.dumps(without_descriptions(available[name])))
        needed[name] = json.loads(text)
        pending.extend(REFERENCE.findall(text))
    return dict(sorted(needed.items()))


def build_schema() -> Schema:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Revisit chart values",
        "description": "Generated by deploy/helm/values_schema.py; edit that file, not this one.",
        **VALUES,
        "definitions": referenced_definitions(VALUES, kubernetes_definitions()),
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if values.schema.json is not what this writes")
    arguments = parser.parse_args()
    text = render()
    if arguments.check:
        if SCHEMA_FILE.read_text() != text:
            print(f"{SCHEMA_FILE} is stale: run python deploy/helm/values_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
