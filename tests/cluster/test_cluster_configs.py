"""Every shipped cluster file is a test (STYLE.md 9), offline: no cloud, no Kubernetes, no Docker.

Launcher YAMLs (cluster/*.yaml) are checked against the JSON schema that ships with Ray
(ray/autoscaler/ray-schema.json), then filled with the provider defaults exactly as `ray up`
does (`prepare_config`) and checked again with Ray's own `validate_config`. KubeRay manifests
(cluster/kuberay/*.yaml) are checked for the fields their resources require; the CRD's full
OpenAPI schema is not bundled with any Python package, so this is the documented minimum.

Then what no schema can see: the image every file runs (cluster/Dockerfile) has a Python that
`requires-python` accepts and the CUDA 12 torch build constraints.txt pins; every file names
the same image tag; no node installs anything at scale-up; workers have object-store
credentials; KubeRay pods get a real /dev/shm; the RayJob entrypoint needs no working directory.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_YAMLS = sorted(CLUSTER.glob("*.yaml"))
KUBERAY_YAMLS = sorted((CLUSTER / "kuberay").glob("*.yaml"))
RAY_KINDS = {"RayCluster", "RayJob"}
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands")

# What each base image the Dockerfile may start FROM contains. No Docker here, so these are facts
# read from public sources, not from pulling the image; the Dockerfile's own RUN asserts the
# Python, torch and CUDA versions again when the image is really built.
#   pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime
#     - tag = <torch>-cuda<CUDA major.minor>-cudnn<N>-runtime: pytorch/pytorch docker.Makefile,
#       `DOCKER_TAG := $(PYTORCH_VERSION)-cuda$(CUDA_VERSION_SHORT)-cudnn$(CUDNN_VERSION)-runtime`.
#     - Python 3.12: pytorch/pytorch Dockerfile, the `official` stage is `ubuntu:24.04` with apt's
#       python3 and `COPY --from=pytorch-installs /usr/local/lib/python3.12`; a public lock script
#       pinned to this tag's digest (sha256:6acf597e...) reports /usr/lib/python3.12/EXTERNALLY-MANAGED
#       and torch under /usr/local/lib/python3.12/dist-packages.
#     - torch 2.13.0+cu126 (torch.version.cuda == "12.6"): a public image test pinned to the same
#       digest asserts exactly these two values.
BASE_IMAGES = {
    "pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime": {"python": "3.12", "torch": "2.13.0", "cuda": "12.6"},
}
# The CUDA line the image must run (issue 22: "a current CUDA 12 PyTorch base"). It has to come
# from the base image: PyPI's own torch 2.13.0 Linux x86_64 wheel is a CUDA 13 build (its metadata
# requires cuda-toolkit 13.0.3 and nvidia-cudnn-cu13, as pip's resolver shows), so a Dockerfile that
# let pip replace the base's torch would silently change CUDA major.
CUDA_MAJOR = 12


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _constraints() -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _dockerfile() -> str:
    return (CLUSTER / "Dockerfile").read_text()


def _instruction(name: str) -> list[str]:
    """Arguments of every `NAME ...` instruction in the Dockerfile (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", _dockerfile())
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", text, flags=re.M)]


def test_the_expected_files_ship():
    names = {p.name for p in LAUNCHER_YAMLS} | {f"kuberay/{p.name}" for p in KUBERAY_YAMLS}
    assert {"aws.yaml", "gcp.yaml", "local.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml",
            "kuberay/serviceaccount.yaml"} <= names
    assert (CLUSTER / "Dockerfile").is_file() and (REPO / "constraints.txt").is_file()
    assert "kuberay/pvc.yaml" not in names, "shared storage is the object store, not a ReadWriteMany claim"


# --- Launcher YAMLs: Ray's own checks ----------------------------------------------------------

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


# --- Launcher YAMLs: what the schema cannot see -------------------------------------------------

def _prepared(path: Path) -> dict:
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(_load(path))


def check_no_node_installs(cfg: dict) -> None:
    """Raise AssertionError if any command run before `ray start` installs packages with pip.

    Checked on the config *after* Ray merges its defaults: a missing `setup_commands` key would
    bring in the defaults' own `pip install` lines."""
    lists = [(k, cfg.get(k) or []) for k in COMMAND_KEYS]
    for name, node_type in cfg.get("available_node_types", {}).items():
        lists += [(f"{name}.{k}", node_type.get(k) or []) for k in COMMAND_KEYS]
    for where, cmds in lists:
        for c in cmds:
            installs = re.search(r"\b(pip3?|uv)\b.*\binstall\b", c)
            assert not installs, f"{where} installs at scale-up: {c!r}"


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_runs_raylm_image_and_installs_nothing_per_node(path):
    cfg = _prepared(path)
    docker = cfg["docker"]
    assert docker.get("image") == _image(), f"{path.name}: docker.image must be raylm's image {_image()}"
    assert docker.get("container_name"), f"{path.name}: docker.container_name is required with an image"
    for k in ("head_image", "worker_image"):
        assert k not in docker, f"{path.name}: docker.{k} would run another image on some nodes"
    for name, node_type in cfg["available_node_types"].items():
        assert "worker_image" not in node_type.get("docker", {}), f"{path.name}: {name} overrides the image"
    check_no_node_installs(cfg)
    assert not _load(path).get("file_mounts"), f"{path.name}: raylm is in the image; nothing to copy per node"
    for cmd in cfg["head_start_ray_commands"][-1:] + cfg["worker_start_ray_commands"][-1:]:
        assert "RAY_worker_niceness=0" in cmd, f"{path.name}: Ray workers must run at nice 0: {cmd!r}"


def test_no_install_check_is_live():
    cfg = _prepared(CLUSTER / "aws.yaml")
    bad = copy.deepcopy(cfg)
    bad["available_node_types"]["gpu_worker"]["worker_setup_commands"] = ["python3 -m pip install -e ~/raylm"]
    with pytest.raises(AssertionError, match="gpu_worker.worker_setup_commands"):
        check_no_node_installs(bad)
    bad = _load(CLUSTER / "aws.yaml")
    bad.pop("setup_commands")  # Ray's AWS defaults then add their own `pip install -U ray ...`
    with pytest.raises(AssertionError, match="setup_commands installs"):
        check_no_node_installs(_prepared_dict(bad))


def _prepared_dict(cfg: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(cfg)


def test_no_latest_dlami_anywhere():
    """Ray resolves `latest_dlami` (and an empty ImageId) to an Ubuntu 18.04 / CUDA 11 DLAMI."""
    for path in CLUSTER.rglob("*"):
        if path.is_file() and path.suffix != ".md":  # the README may say what is avoided
            assert "latest_dlami" not in path.read_text().lower(), f"{path.relative_to(REPO)} names latest_dlami"
    for name, node_type in _load(CLUSTER / "aws.yaml")["available_node_types"].items():
        ami = node_type["node_config"].get("ImageId", "")
        assert ami.startswith(("ami-", "resolve:ssm:")), f"aws.yaml {name}: ImageId {ami!r} is not an explicit image"


def test_aws_every_node_has_an_instance_profile_and_the_iam_files_match():
    cfg = _load(CLUSTER / "aws.yaml")
    types = cfg["available_node_types"]
    profiles = {}
    for name, node_type in types.items():
        prof = node_type["node_config"].get("IamInstanceProfile") or {}
        assert prof.get("Name") or prof.get("Arn"), f"aws.yaml {name}: no IamInstanceProfile (no S3 for its workers)"
        profiles[name] = prof.get("Name") or prof["Arn"].rsplit("/", 1)[-1]
    workers = {profiles[n] for n in types if n != cfg["head_node_type"]}
    assert len(workers) == 1
    worker = workers.pop()
    iam = CLUSTER / "aws-iam"
    head_policy = json.loads((iam / "head-policy.json").read_text())
    passed = [s["Resource"] for s in head_policy["Statement"] if s["Action"] == "iam:PassRole"]
    assert passed == [f"arn:aws:iam::*:role/{worker}"], "the head must be allowed to pass the workers' role"
    for f in ("worker-policy.json", "head-policy.json"):
        actions = {a for s in json.loads((iam / f).read_text())["Statement"] for a in _as_list(s["Action"])}
        assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject"} <= actions, f"{f}: S3 access"
    json.loads((iam / "ec2-trust.json").read_text())


def _as_list(x):
    return x if isinstance(x, list) else [x]


def test_gcp_workers_have_a_service_account_with_storage_scope():
    cfg = _load(CLUSTER / "gcp.yaml")
    project = cfg["provider"]["project_id"]
    for name, node_type in cfg["available_node_types"].items():
        if name == cfg["head_node_type"]:
            continue  # the launcher gives the head its own ray-autoscaler-sa-v1 (storage.objectAdmin)
        accounts = node_type["node_config"].get("serviceAccounts") or []
        assert accounts, f"gcp.yaml {name}: no service account (workers could not write gs://)"
        for acct in accounts:
            assert acct["email"].endswith(f"@{project}.iam.gserviceaccount.com"), f"{name}: account of another project"
            scopes = set(acct.get("scopes", []))
            assert scopes & {"https://www.googleapis.com/auth/cloud-platform",
                             "https://www.googleapis.com/auth/devstorage.read_write",
                             "https://www.googleapis.com/auth/devstorage.full_control"}, f"{name}: no storage scope"


def test_local_containers_get_object_store_credentials():
    opts = " ".join(_load(CLUSTER / "local.yaml")["docker"]["run_options"])
    m = re.search(r"--env-file\s+(\S+)", opts)
    assert m, "local.yaml: containers need the object store's credentials (--env-file)"
    init = " ".join(_load(CLUSTER / "local.yaml")["initialization_commands"])
    assert m.group(1) in init, "local.yaml: check the env file exists before starting, with a clear error"


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
    assert "--gpus" in " ".join(types["gpu_worker"]["docker"]["worker_run_options"])


@pytest.mark.parametrize("path", LAUNCHER_YAMLS + KUBERAY_YAMLS, ids=lambda p: p.name)
def test_every_key_has_a_comment(path):
    """House style: a short comment on every key, at the end of its line or on the line above
    (block-scalar bodies, list items and bare parent keys excepted)."""
    block_scalar = None  # indentation of a `key: |` / `key: >-` whose body lines are free text
    previous = ""
    for line in path.read_text().splitlines():
        above, previous = previous, line if line.strip() else previous
        indent = len(line) - len(line.lstrip())
        if block_scalar is not None:
            if not line.strip() or indent > block_scalar:
                continue
            block_scalar = None
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = re.match(r"^(- )?[A-Za-z_][\w.\-/]*:(\s|$)", stripped)
        if not m:
            continue
        if re.search(r":\s*[|>][-+]?\s*(#.*)?$", stripped):
            block_scalar = indent
        if stripped.startswith("- ") or re.match(r"^[\w\-]+:\s*$", stripped):
            continue  # list items and bare parents of one-line-commented children are readable as is
        assert "#" in line or above.strip().startswith("#"), f"{path.name}: key without a comment: {line!r}"


# --- The image ------------------------------------------------------------------------------

def _image() -> str:
    """The image every cluster file must run: <registry>/raylm:<raylm version>."""
    return f"registry.example.com/raylm:{_project()['version']}"


def check_base_image(base: str, requires_python: str, torch_pin: str, cuda_major: int) -> None:
    """Raise AssertionError unless `base` is a known image whose Python and torch build fit."""
    assert base in BASE_IMAGES, f"unknown base image {base!r}: add its Python/torch/CUDA (with sources) to BASE_IMAGES"
    facts = BASE_IMAGES[base]
    assert Version(facts["python"]) in SpecifierSet(requires_python), \
        f"{base} has Python {facts['python']}, requires-python is {requires_python!r}"
    assert Version(facts["torch"]) == Version(torch_pin), \
        f"{base} has torch {facts['torch']}, constraints pin {torch_pin}: pip would replace its CUDA build"
    assert int(facts["cuda"].split(".")[0]) == cuda_major, f"{base} has CUDA {facts['cuda']}, need CUDA {cuda_major}"


def test_image_python_and_cuda_fit_the_project():
    (base,) = _instruction("FROM")
    pins = _constraints()
    check_base_image(base, _project()["requires-python"], pins["torch"], CUDA_MAJOR)
    # the tag itself says the same (docker.Makefile's tag format)
    m = re.fullmatch(r"pytorch/pytorch:(?P<torch>[\d.]+)-cuda(?P<cuda>[\d.]+)-cudnn\d+-runtime", base)
    assert m and m["torch"] == BASE_IMAGES[base]["torch"] and m["cuda"] == BASE_IMAGES[base]["cuda"]


def test_base_image_check_is_live():
    base = next(iter(BASE_IMAGES))
    with pytest.raises(AssertionError, match="requires-python"):
        check_base_image(base, ">=3.13", "2.13.0", 12)
    with pytest.raises(AssertionError, match="pip would replace"):
        check_base_image(base, ">=3.11", "2.12.0", 12)
    with pytest.raises(AssertionError, match="need CUDA 13"):
        check_base_image(base, ">=3.11", "2.13.0", 13)
    with pytest.raises(AssertionError, match="unknown base image"):
        check_base_image("rayproject/ray:2.58.0-py310-gpu", ">=3.11", "2.13.0", 12)


def test_dependency_ranges_hold_the_pinned_versions():
    """pyproject.toml: ray and torch from the tested minor up to the next; constraints.txt: exact."""
    pins = _constraints()
    deps = {Requirement(d).name: Requirement(d) for d in _project()["dependencies"]}
    for name, tested in (("ray", "2.58.0"), ("torch", "2.13.0")):
        assert pins[name] == tested, f"constraints.txt pins {name}=={pins[name]}, tested is {tested}"
        spec = deps[name].specifier
        v = Version(tested)
        next_minor = Version(f"{v.major}.{v.minor + 1}")
        assert v in spec and next_minor not in spec, f"{name}: want >={v.major}.{v.minor},<{next_minor}"
        assert not any(s.operator == "==" for s in spec), f"{name} is pinned exactly in pyproject.toml"
    assert "+" not in pins["torch"], "a local label (+cpu) would reject the image's CUDA build"
    from packaging.utils import canonicalize_name

    for dep in _project()["dependencies"] + _project()["optional-dependencies"]["dev"]:
        name = canonicalize_name(Requirement(dep).name)
        assert name in pins, f"{name} is not in constraints.txt: regenerate it (see its header)"


def test_dockerfile_installs_from_constraints_and_keeps_the_base_torch():
    runs = " ".join(_instruction("RUN"))
    assert re.search(r"pip install [^&]*-c constraints\.txt", runs), "the image must install from constraints.txt"
    for flag in ("--index-url", "--extra-index-url", "--force-reinstall", "--ignore-installed", "--upgrade"):
        assert flag not in runs, f"{flag} could swap the base image's CUDA torch build"
    copies = " ".join(_instruction("COPY"))
    assert "constraints.txt" in copies and "configs" in copies
    pins = _constraints()
    # the build-time assertion checks the versions the constraints pin
    assert f"'{pins['torch']}'" in runs and f"'{pins['ray']}'" in runs
    assert "torch.version.cuda" in runs and f"startswith('{CUDA_MAJOR}.')" in runs


def test_makefile_installs_from_constraints():
    mk = (REPO / "Makefile").read_text()
    recipe = mk.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "constraints.txt" in recipe.splitlines()[0], "the install stamp must depend on constraints.txt"
    installs = [ln for ln in recipe.splitlines() if "pip install" in ln and "--upgrade pip" not in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs), installs


def test_every_cluster_file_runs_the_same_image():
    images = {}
    for path in LAUNCHER_YAMLS:
        images[path.name] = {_load(path)["docker"]["image"]}
    for path in KUBERAY_YAMLS:
        doc = _load(path)
        if doc.get("kind") in RAY_KINDS:
            images[f"kuberay/{path.name}"] = {c["image"] for t in _pod_templates(doc) for c in t["spec"]["containers"]}
    assert all(v == {_image()} for v in images.values()), images


# --- KubeRay --------------------------------------------------------------------------------

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


def check_pod_has_shm_and_identity(where: str, template: dict) -> None:
    """Raise AssertionError unless the pod mounts a RAM-backed /dev/shm and runs as `raylm`."""
    spec = template["spec"]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0].get("volumeMounts", [])}
    assert "/dev/shm" in mounts, f"{where}: no /dev/shm mount (Ray's object store would fall back to disk)"
    assert vols.get(mounts["/dev/shm"], {}).get("emptyDir", {}).get("medium") == "Memory", \
        f"{where}: /dev/shm must be an emptyDir with medium: Memory"
    assert not any("persistentVolumeClaim" in v for v in vols.values()), f"{where}: shared storage is the object store"
    assert spec.get("serviceAccountName") == "raylm", f"{where}: pods reach the bucket as serviceAccountName raylm"


def _pod_templates(doc: dict) -> list[dict]:
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


@pytest.mark.parametrize("path", [p for p in KUBERAY_YAMLS if _load(p).get("kind") in RAY_KINDS],
                         ids=lambda p: p.name)
def test_kuberay_manifest_required_fields(path):
    check_kuberay(_load(path))


@pytest.mark.parametrize("path", [p for p in KUBERAY_YAMLS if _load(p).get("kind") in RAY_KINDS],
                         ids=lambda p: p.name)
def test_kuberay_every_group_has_shm_and_object_store_identity(path):
    doc = _load(path)
    for i, t in enumerate(_pod_templates(doc)):
        check_pod_has_shm_and_identity(f"{path.name} group {i}", t)
    sa = _load(CLUSTER / "kuberay" / "serviceaccount.yaml")
    assert sa["kind"] == "ServiceAccount" and sa["metadata"]["name"] == "raylm"


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
    head = _pod_templates(doc)[0]
    bad = copy.deepcopy(head)
    bad["spec"]["containers"][0]["volumeMounts"] = []
    with pytest.raises(AssertionError, match="no /dev/shm"):
        check_pod_has_shm_and_identity("head", bad)
    bad = copy.deepcopy(head)
    bad["spec"]["volumes"][0]["emptyDir"] = {}
    with pytest.raises(AssertionError, match="medium: Memory"):
        check_pod_has_shm_and_identity("head", bad)


def _image_path_to_repo(path: str) -> Path:
    """A path inside the image (under the Dockerfile's WORKDIR) -> the repo file it was copied from."""
    (workdir,) = _instruction("WORKDIR")
    assert path.startswith(workdir.rstrip("/") + "/"), f"{path} is not under the image's raylm folder {workdir}"
    return REPO / path[len(workdir.rstrip("/")) + 1:]


def test_rayjob_entrypoint_is_absolute_and_a_valid_raylm_command():
    """Parses with raylm's own CLI and config loader; the config path is absolute (no working
    directory assumed) and in the image; outputs and checkpoints go to object storage."""
    from raylm import config as C
    from raylm.cli import build_parser
    from raylm.root import RootConfig

    argv = shlex.split(_load(CLUSTER / "kuberay" / "rayjob.yaml")["spec"]["entrypoint"])
    assert argv[0] == "raylm"
    args = build_parser().parse_args(argv[1:])
    assert args.config.startswith("/"), f"entrypoint config {args.config!r} depends on the working directory"
    local = _image_path_to_repo(args.config)
    assert local.is_file(), f"{args.config} is not copied into the image ({local} missing)"
    cfg = C.load(RootConfig, local, args.overrides)
    for p in cfg.data.ingest.files.paths:  # inputs: a bucket URI, or a file the image carries
        assert "://" in p or _image_path_to_repo(p).is_file(), f"input {p!r} is relative or not in the image"
    assert cfg.out.startswith(("s3://", "gs://")), cfg.out
    assert cfg.cluster.storage_path.startswith(("s3://", "gs://")), cfg.cluster.storage_path
