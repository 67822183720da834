"""Every shipped cluster file is a test (STYLE.md 9), offline: no cloud, no Kubernetes, no Ray.

Launcher YAMLs (cluster/*.yaml) are checked against the JSON schema that ships with Ray
(ray/autoscaler/ray-schema.json), then filled with the provider defaults exactly as `ray up`
does (`prepare_config`) and checked again with Ray's own `validate_config`. KubeRay manifests
(cluster/kuberay/*.yaml) are checked for the fields their resources require; the CRD's full
OpenAPI schema is not bundled with any Python package, so this is the documented minimum.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_YAMLS = sorted(CLUSTER.glob("*.yaml"))
KUBERAY_YAMLS = sorted((CLUSTER / "kuberay").glob("*.yaml"))
RAY_KINDS = {"RayCluster", "RayJob"}


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_expected_files_ship():
    names = {p.name for p in LAUNCHER_YAMLS} | {f"kuberay/{p.name}" for p in KUBERAY_YAMLS}
    assert {"aws.yaml", "gcp.yaml", "local.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"} <= names


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_yaml_matches_ray_schema(path):
    import jsonschema

    jsonschema.validate(_load(path), _schema())


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_yaml_survives_ray_up_preparation(path):
    """`ray up` merges the provider defaults and validates again; no cloud call happens here."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(_load(path))
    validate_config(cfg)
    assert cfg["head_node_type"] in cfg["available_node_types"]


def test_schema_check_is_live():
    """The validator rejects what `ray up` would: a float resource and an unknown top-level key."""
    import jsonschema

    cfg = _load(CLUSTER / "aws.yaml")
    bad = copy.deepcopy(cfg)
    bad["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema())
    bad = copy.deepcopy(cfg)
    bad["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema())


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_installs_raylm_mounts_shared_storage_and_comments_top_level_keys(path):
    cfg = _load(path)
    cmds = cfg.get("setup_commands", []) + cfg.get("head_setup_commands", [])
    assert any("pip install" in c and "raylm" in c for c in cmds), f"{path.name}: no set-up command installs raylm"
    assert cfg["file_mounts"], f"{path.name}: the repo is not copied to the nodes"
    assert any("/mnt/shared" in c for c in cmds), f"{path.name}: no set-up command provides /mnt/shared"
    for line in path.read_text().splitlines():
        if re.match(r"^[A-Za-z_]+:", line):  # a top-level key
            assert "#" in line, f"{path.name}: top-level key without a comment: {line!r}"


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_cloud_placement_resources(name):
    """Data nodes offer CPUs only; GPU nodes also offer one `trainer` per GPU; the head runs no tasks."""
    types = _load(CLUSTER / name)["available_node_types"]
    assert types["head"]["resources"] == {"CPU": 0}
    assert "GPU" not in types["cpu_worker"]["resources"] and "trainer" not in types["cpu_worker"]["resources"]
    gpu = types["gpu_worker"]["resources"]
    assert gpu["GPU"] >= 1 and gpu["trainer"] == gpu["GPU"]
    assert types["cpu_worker"]["labels"]["raylm-role"] == "data"
    assert types["gpu_worker"]["labels"]["raylm-role"] == "train"


# --- KubeRay -------------------------------------------------------------------------------

def _check_pod_template(where: str, template: dict) -> None:
    containers = template.get("spec", {}).get("containers")
    assert containers, f"{where}.template.spec.containers is required"
    for c in containers:
        assert c.get("name") and c.get("image"), f"{where}: every container needs name and image"


def _check_cluster_spec(where: str, spec: dict) -> None:
    head = spec.get("headGroupSpec")
    assert isinstance(head, dict), f"{where}.headGroupSpec is required"
    assert isinstance(head.get("rayStartParams"), dict), f"{where}.headGroupSpec.rayStartParams is required"
    _check_pod_template(f"{where}.headGroupSpec", head.get("template") or {})
    groups = spec.get("workerGroupSpecs", [])
    assert len({g.get("groupName") for g in groups}) == len(groups), f"{where}: groupName must be unique"
    for g in groups:
        w = f"{where}.workerGroupSpecs[{g.get('groupName')}]"
        assert g.get("groupName"), f"{w}.groupName is required"
        for k in ("replicas", "minReplicas", "maxReplicas"):
            assert isinstance(g.get(k), int) and g[k] >= 0, f"{w}.{k} must be an integer >= 0"
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], f"{w}: need min <= replicas <= max"
        assert isinstance(g.get("rayStartParams"), dict), f"{w}.rayStartParams is required (may be empty)"
        _check_pod_template(w, g.get("template") or {})
    assert str(spec.get("rayVersion", "")) == _ray_version(), f"{where}.rayVersion must match the pinned Ray"


def _ray_version() -> str:
    import ray

    return ray.__version__


def check_kuberay(doc: dict) -> None:
    """Raise AssertionError naming the first missing or inconsistent field of a KubeRay resource."""
    assert doc.get("apiVersion") == "ray.io/v1", "apiVersion must be ray.io/v1"
    assert doc.get("kind") in RAY_KINDS, f"kind must be one of {sorted(RAY_KINDS)}"
    assert (doc.get("metadata") or {}).get("name"), "metadata.name is required"
    spec = doc.get("spec") or {}
    if doc["kind"] == "RayCluster":
        _check_cluster_spec("spec", spec)
    else:
        assert isinstance(spec.get("entrypoint"), str) and spec["entrypoint"].strip(), "spec.entrypoint is required"
        assert isinstance(spec.get("rayClusterSpec"), dict), "spec.rayClusterSpec is required"
        _check_cluster_spec("spec.rayClusterSpec", spec["rayClusterSpec"])
        if "runtimeEnvYAML" in spec:
            assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict), "runtimeEnvYAML must hold a mapping"


@pytest.mark.parametrize("path", [p for p in KUBERAY_YAMLS if _load(p).get("kind") in RAY_KINDS],
                         ids=lambda p: p.name)
def test_kuberay_manifest_required_fields(path):
    check_kuberay(_load(path))


def test_kuberay_check_is_live():
    doc = _load(CLUSTER / "kuberay" / "rayjob.yaml")
    for mutate, msg in [(lambda d: d["spec"].pop("entrypoint"), "entrypoint"),
                        (lambda d: d["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(maxReplicas=1),
                         "min <= replicas <= max"),
                        (lambda d: d["spec"]["rayClusterSpec"]["headGroupSpec"].pop("rayStartParams"),
                         "rayStartParams"),
                        (lambda d: d.update(apiVersion="ray.io/v1alpha1"), "apiVersion")]:
        bad = copy.deepcopy(doc)
        mutate(bad)
        with pytest.raises(AssertionError, match=re.escape(msg)):
            check_kuberay(bad)


def test_kuberay_pods_share_storage_and_run_the_raylm_image():
    """Every Ray pod mounts the same claim at the same path, and runs the image cluster/Dockerfile builds."""
    pvc = _load(CLUSTER / "kuberay" / "pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert f"rayproject/ray:{_ray_version()}" in dockerfile and "pip install" in dockerfile
    for path in KUBERAY_YAMLS:
        doc = _load(path)
        if doc["kind"] not in RAY_KINDS:
            continue
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
        for t in templates:
            claims = [v["persistentVolumeClaim"]["claimName"] for v in t["spec"].get("volumes", [])
                      if "persistentVolumeClaim" in v]
            assert claims == [pvc["metadata"]["name"]], f"{path.name}: a pod without the shared claim"
            mounts = {m["name"]: m["mountPath"] for m in t["spec"]["containers"][0]["volumeMounts"]}
            assert mounts.get("shared") == "/mnt/shared"
            assert t["spec"]["containers"][0]["image"].endswith("/raylm:0.1.0")


def test_rayjob_entrypoint_is_a_valid_raylm_command():
    """The RayJob's entrypoint parses with raylm's own CLI and config loader; outputs go to shared storage."""
    import shlex

    from raylm import config as C
    from raylm.cli import build_parser
    from raylm.root import RootConfig

    argv = shlex.split(_load(CLUSTER / "kuberay" / "rayjob.yaml")["spec"]["entrypoint"])
    assert argv[0] == "raylm"
    args = build_parser().parse_args(argv[1:])
    cfg = C.load(RootConfig, REPO / args.config, args.overrides)
    assert cfg.out.startswith("/mnt/shared/") and cfg.cluster.storage_path.startswith("/mnt/shared/")
