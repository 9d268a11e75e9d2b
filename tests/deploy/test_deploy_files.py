"""deploy/ files parse and agree with this repo: images are the ones we build, commands exist in the CLI,
spec files referenced by cluster jobs validate against their job specs, and ports are consistent."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from api.cli import cli
from corpus.spec import job_kind, load_spec

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OUR_IMAGES = {"k2forge-cpu:latest": "Dockerfile.cpu", "k2forge-cuda:latest": "Dockerfile.cuda"}
#: CLI command path -> job kind whose spec its --spec/--config file must satisfy
KIND_OF = {("rephrase", "run"): "rephrase", ("train", "run"): "train", ("mathnotes", "run"): "mathnotes",
           ("corpus", "ingest"): "ingest", ("corpus", "dedup"): "dedup", ("corpus", "pack"): "pack",
           ("corpus", "mix"): "mix"}


def _resolve_command(argv: list[str]) -> tuple[click.Command, tuple[str, ...]]:
    assert argv[0] == "k2forge", argv
    cmd: click.Command = cli
    path: list[str] = []
    ctx = click.Context(cli)
    args = [a for a in argv[1:]]
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"`{' '.join(argv)}`: no command {name!r} in the k2forge CLI"
        cmd, path = sub, path + [name]
    return cmd, tuple(path)


def check_k2forge_command(argv: list[str]) -> None:
    """The command exists, its options exist, and a referenced spec file validates against the job's spec."""
    cmd, path = _resolve_command(argv)
    opts = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    for i, a in enumerate(argv):
        if a.startswith("--"):
            assert a.split("=")[0] in opts, f"`{' '.join(argv)}`: option {a} not accepted by {' '.join(path)}"
        if a in ("--spec", "--config"):
            spec_file = argv[i + 1]
            local = REPO / spec_file.replace("/opt/k2forge/", "")
            assert local.exists(), f"{spec_file} is not shipped in the image (expected {local})"
            spec_cls, _ = job_kind(KIND_OF[path])
            load_spec(spec_cls, local)


def _yaml(name: str):
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


def _dockerfile_cmd(name: str) -> list[str]:
    text = (DEPLOY / name).read_text()
    m = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert m, f"{name}: no exec-form CMD"
    return yaml.safe_load(m.group(1))


@pytest.mark.parametrize("name", sorted(OUR_IMAGES.values()))
def test_dockerfiles_copy_existing_paths_and_run_our_cli(name):
    text = (DEPLOY / name).read_text()
    for src in re.findall(r"^COPY (\S+) \S+$", text, re.M):
        assert (REPO / src).exists(), f"{name}: COPY {src} does not exist in the repo"
    assert "torch==2.13.0" in text or "vllm" in text
    cmd = _dockerfile_cmd(name)
    check_k2forge_command(cmd)
    port = cmd[cmd.index("--port") + 1]
    assert f"EXPOSE {port}" in text


def test_compose_services_images_ports():
    (doc,) = _yaml("compose.yaml")
    services = doc["services"]
    assert {"api", "vllm", "ray-head", "ray-worker"} <= set(services)
    for name, svc in services.items():
        assert svc.get("image") in OUR_IMAGES, f"compose service {name}: image {svc.get('image')} is not built here"
        if "build" in svc:
            assert (DEPLOY / svc["build"]["dockerfile"].replace("deploy/", "")).exists()
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            assert vol.split(":")[0] in doc["volumes"], f"{name}: volume {vol} not declared"
    api = services["api"]["command"]
    check_k2forge_command(api)
    assert f"{api[api.index('--port') + 1]}:" in services["api"]["ports"][0]
    vllm_cmd = services["vllm"]["command"]
    vport = vllm_cmd[vllm_cmd.index("--port") + 1]
    assert f"{vport}:{vport}" in services["vllm"]["ports"]
    assert f"http://vllm:{vport}/v1" in api, "api must allow the compose vLLM endpoint"
    ray_addr = api[api.index("--ray-address") + 1]
    client_port = ray_addr.rsplit(":", 1)[1]
    head = " ".join(services["ray-head"]["command"])
    assert f"--ray-client-server-port {client_port}" in head
    assert any(p.startswith(f"{client_port}:") for p in services["ray-head"]["ports"])
    gcs = re.search(r"--port (\d+)", head).group(1)
    assert f"ray-head:{gcs}" in " ".join(services["ray-worker"]["command"])


def test_ray_up_cluster_yaml():
    (doc,) = _yaml("ray/cluster.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "max_workers"):
        assert key in doc, f"ray/cluster.yaml: missing {key}"
    assert doc["head_node_type"] in doc["available_node_types"]
    assert doc["docker"]["image"] in OUR_IMAGES
    head_cmd = " ".join(doc["head_start_ray_commands"])
    port = re.search(r"--port=(\d+)", head_cmd).group(1)
    assert f":{port}" in " ".join(doc["worker_start_ray_commands"])


def _pod_images(template: dict) -> list[str]:
    return [c["image"] for c in template["spec"]["containers"]]


@pytest.mark.parametrize("name", ["k8s/raycluster.yaml", "k8s/rayjob-rephrase.yaml", "k8s/rayjob-train.yaml"])
def test_kuberay_manifests(name):
    (doc,) = _yaml(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayCluster", "RayJob")
    cluster = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    images = _pod_images(cluster["headGroupSpec"]["template"])
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        images += _pod_images(group["template"])
    assert set(images) <= set(OUR_IMAGES), f"{name}: images {images} are not built here"
    if doc["kind"] == "RayJob":
        check_k2forge_command(shlex.split(doc["spec"]["entrypoint"]))


def test_guide_states_gpu_sizing():
    text = (DEPLOY / "README.md").read_text()
    assert "tokens/day" in text and "GPU" in text
